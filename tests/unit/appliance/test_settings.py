from __future__ import annotations

from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.settings import AgentSettings, HubSettings, load

AGENT_ENV = {"APPLIANCE_HUB_URL": "http://hub:8700", "APPLIANCE_ZONE": "ae-dxb"}


def test_defaults_when_nothing_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    hub = load(HubSettings, environ={})
    assert hub.host == "127.0.0.1"
    assert hub.hub_port == 8700
    assert hub.max_upload_mb == 512
    assert hub.data_dir == tmp_path / "appliance" / "hub"
    assert hub.resolved_database_url == f"sqlite:///{tmp_path / 'appliance' / 'hub' / 'hub.db'}"


def test_environment_overrides_defaults_and_is_converted():
    hub = load(
        HubSettings,
        environ={
            "APPLIANCE_HUB_PORT": "9000",
            "APPLIANCE_HOST": "0.0.0.0",
            "APPLIANCE_DATA_DIR": "/srv/hub",
            "APPLIANCE_DATABASE_URL": "postgresql+psycopg://db/hub",
        },
    )
    assert hub.hub_port == 9000
    assert isinstance(hub.hub_port, int)
    assert hub.host == "0.0.0.0"
    assert hub.data_dir == Path("/srv/hub")
    assert hub.resolved_database_url == "postgresql+psycopg://db/hub"


def test_flags_override_environment():
    hub = load(
        HubSettings,
        overrides={"hub_port": 9100, "host": "10.0.0.1"},
        environ={"APPLIANCE_HUB_PORT": "9000", "APPLIANCE_HOST": "0.0.0.0"},
    )
    assert hub.hub_port == 9100
    assert hub.host == "10.0.0.1"


def test_flag_given_as_none_means_not_given():
    hub = load(HubSettings, overrides={"hub_port": None}, environ={"APPLIANCE_HUB_PORT": "9000"})
    assert hub.hub_port == 9000


def test_reads_process_environment_by_default(monkeypatch):
    monkeypatch.setenv("APPLIANCE_HUB_PORT", "8123")
    assert load(HubSettings).hub_port == 8123


def test_only_prefixed_variables_count():
    hub = load(HubSettings, environ={"HUB_PORT": "9000", "hub_port": "9001"})
    assert hub.hub_port == 8700


def test_empty_variable_falls_back_to_default():
    assert load(HubSettings, environ={"APPLIANCE_HUB_PORT": ""}).hub_port == 8700


def test_agent_settings_from_environment():
    agent = load(
        AgentSettings,
        environ={
            **AGENT_ENV,
            "APPLIANCE_RUNTIME": "openvino",
            "APPLIANCE_SYNC_INTERVAL": "2.5",
            "APPLIANCE_LABELS": "rack=a, gpu=no,",
            "APPLIANCE_DATA_DIR": "/srv/agent",
        },
    )
    assert agent.hub_url == "http://hub:8700"
    assert agent.zone == "ae-dxb"
    assert agent.runtime == "openvino"
    assert agent.link.sync_interval == 2.5
    assert agent.labels == ("rack=a", "gpu=no")
    assert agent.link.trusted_root is None


def test_trusted_root_and_probation_variables_are_typed():
    agent = load(
        AgentSettings,
        environ={
            **AGENT_ENV,
            "APPLIANCE_TRUSTED_ROOT": "/etc/appliance/root.json",
            "APPLIANCE_PROBATION_SECONDS": "12.5",
            "APPLIANCE_PROBATION_REQUESTS": "7",
        },
    )
    assert agent.link.trusted_root == Path("/etc/appliance/root.json")
    assert (agent.probation.seconds, agent.probation.requests) == (12.5, 7)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("APPLIANCE_AGENT_PORT", "eighty"),
        ("APPLIANCE_INFERENCE_THREADS", "1.5"),
        ("APPLIANCE_SYNC_INTERVAL", "soon"),
        ("APPLIANCE_DRIFT_P_VALUE", "small"),
    ],
)
def test_bad_number_names_the_variable(variable, value):
    with pytest.raises(ConfigError) as info:
        load(AgentSettings, environ={**AGENT_ENV, variable: value})
    assert variable in str(info.value)
    assert value in str(info.value)


def test_bad_hub_port_names_the_variable():
    with pytest.raises(ConfigError, match="APPLIANCE_HUB_PORT"):
        load(HubSettings, environ={"APPLIANCE_HUB_PORT": "80a"})


def test_bad_runtime_names_the_variable_and_the_choices():
    with pytest.raises(ConfigError) as info:
        load(AgentSettings, environ={**AGENT_ENV, "APPLIANCE_RUNTIME": "tensorrt"})
    message = str(info.value)
    assert "APPLIANCE_RUNTIME" in message
    for choice in ("auto", "onnxruntime", "openvino"):
        assert choice in message


def test_missing_required_agent_settings_give_hint():
    with pytest.raises(ConfigError) as info:
        load(AgentSettings, environ={})
    error = info.value
    assert "hub_url" in error.message and "zone" not in error.message  # enrolment sets the zone
    assert error.hint is not None
    assert "APPLIANCE_HUB_URL" in error.hint


def test_required_settings_may_come_from_flags():
    agent = load(AgentSettings, overrides={"hub_url": "http://h:1", "zone": "z"}, environ={})
    assert (agent.hub_url, agent.zone) == ("http://h:1", "z")


def test_a_concerns_settings_are_one_object_with_the_same_variables():
    """Issue 17: drift's settings are AgentSettings.drift; the variables keep their names."""
    settings = load(
        AgentSettings,
        environ={
            **AGENT_ENV,
            "APPLIANCE_DRIFT_WINDOW_ROWS": "250",
            "APPLIANCE_DRIFT_CHECK_S": "0.5",
        },
    )
    assert (settings.drift.window_rows, settings.drift.check_s) == (250, 0.5)
    assert settings.drift.p_value == 0.05  # the default where nothing is said


def test_the_hubs_concerns_read_the_variables_installed_env_files_already_set():
    """Issue 17: HubSettings is one object per concern, and every variable an installed
    hub.env may hold still reaches the same setting."""
    hub = load(
        HubSettings,
        environ={
            "APPLIANCE_TLS_CERT": "/etc/appliance/hub.crt",
            "APPLIANCE_TLS_KEY": "/etc/appliance/hub.key",
            "APPLIANCE_CLIENT_CA": "/etc/appliance/ca.crt",
            "APPLIANCE_REQUIRE_CLIENT_CERT": "yes",
            "APPLIANCE_APPROVALS_REQUIRED": "2",
            "APPLIANCE_MAX_SOAK_S": "60",
            "APPLIANCE_ENCRYPT_MODELS": "false",
            "APPLIANCE_OFFLINE_DAYS": "7",
            "APPLIANCE_SITE_CA": "/etc/appliance/ca",
            "APPLIANCE_AGENT_STALE_S": "30",
            "APPLIANCE_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2",
            "APPLIANCE_SIGN_IN_PER_MINUTE": "5",
            "APPLIANCE_TRAINING_LEASE_S": "9",
        },
    )
    assert hub.tls.cert == Path("/etc/appliance/hub.crt")
    assert hub.tls.key == Path("/etc/appliance/hub.key")
    assert (hub.tls.client_ca, hub.tls.require_client_cert) == (Path("/etc/appliance/ca.crt"), True)
    assert (hub.releases.approvals_required, hub.releases.max_soak_s) == (2, 60.0)
    assert (hub.updates.encrypt, hub.updates.offline_days) == (False, 7)
    assert (hub.fleet.site_ca, hub.fleet.stale_s) == (Path("/etc/appliance/ca"), 30.0)
    assert hub.access.trusted_proxies == ("10.0.0.1", "10.0.0.2")
    assert hub.access.sign_in_per_minute == 5
    assert hub.schedule.training_lease_s == 9.0
    assert hub.schedule.audit_checkpoint_minutes == 5.0  # the default where nothing is said


def test_a_concerns_flags_override_its_variables():
    hub = load(
        HubSettings,
        overrides={"tls": {"cert": Path("/flag.crt"), "key": None}, "releases": {}},
        environ={"APPLIANCE_TLS_CERT": "/env.crt", "APPLIANCE_TLS_KEY": "/env.key"},
    )
    assert (hub.tls.cert, hub.tls.key) == (Path("/flag.crt"), Path("/env.key"))


def test_a_bad_value_in_a_concern_names_the_variable_that_holds_it():
    with pytest.raises(ConfigError, match="APPLIANCE_APPROVALS_REQUIRED='two'"):
        load(HubSettings, environ={"APPLIANCE_APPROVALS_REQUIRED": "two"})
    with pytest.raises(ConfigError, match="APPLIANCE_REQUIRE_CLIENT_CERT"):
        load(HubSettings, environ={"APPLIANCE_REQUIRE_CLIENT_CERT": "maybe"})


def test_the_agents_concerns_read_the_variables_installed_env_files_already_set():
    """Issue 17: AgentSettings is one object per concern; agent.env files keep working."""
    agent = load(
        AgentSettings,
        environ={
            **AGENT_ENV,
            "APPLIANCE_HUB_CA": "/etc/appliance/ca.crt",
            "APPLIANCE_ENROL_TOKEN": "tok",
            "APPLIANCE_OUTBOX_MAX_REPORTS": "50",
            "APPLIANCE_SERVING_PROCESSES": "3",
            "APPLIANCE_SERVING_REPORT_S": "5",
            "APPLIANCE_OPEN_DATA_PLANE": "true",
            "APPLIANCE_BATCHING": "iris=8:2",
            "APPLIANCE_MAX_REQUEST_MB": "4",
            "APPLIANCE_GRPC_PORT": "0",
            "APPLIANCE_GRPC_CLIENT_CERTS": "yes",
        },
    )
    assert agent.link.hub_ca == Path("/etc/appliance/ca.crt")
    assert (agent.link.enrol_token, agent.link.outbox_max_reports) == ("tok", 50)
    assert (agent.serving.processes, agent.serving.report_s) == (3, 5.0)
    assert agent.serving.open_data_plane is True
    assert (agent.serving.batching, agent.serving.max_request_mb) == (("iris=8:2",), 4)
    assert (agent.grpc.port, agent.grpc.client_certs) == (0, True)
    assert agent.serving.plain_http is False  # the default where nothing is said
