"""Issue 14, findings 1 to 3: nothing reaches live traffic without the site's approvals,
and a worker is who its credential says.

Replayed against real hub and agent processes: an ML engineer alone puts an unapproved
version in an A/B experiment; a person who is both engineer and approver rolls out their
own version; one approver rolls out on a hub that requires two; a second worker account
names another worker in its requests. Each is refused (403 audited, 400 or 409) or, for a
rollout whose final promotion is refused, ends rolled back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from appliance.cli.demo.clinic import job_spec, load_clinic
from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site, bootstrap_site
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from appliance.security.credentials import UserCredentials
from appliance.wire.training import ClaimRequest
from tests.harness.models import make_reference_npy, make_tiny_onnx
from tests.harness.site import MODEL, publish, running_hub, serving_version, wait_until

pytestmark = pytest.mark.integration

ZONE = "ae-dxb"


def _answer(url: str, subject: str) -> dict[str, Any]:
    body = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]
    }
    response = httpx.post(
        f"{url}/v2/models/{MODEL}/infer", json=body, headers={"x-subject-id": subject}, timeout=5
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _variants(url: str) -> set[str | None]:
    """The A/B variants 20 customers get (``None``: no experiment routes them)."""
    return {_answer(url, f"c-{i}").get("parameters", {}).get("variant") for i in range(20)}


def _refused(call: Any) -> HubRejectedError:
    with pytest.raises(HubRejectedError) as refused:
        call()
    return refused.value


def _bearer(client: HubClient) -> dict[str, str]:
    assert client.credentials is not None
    return {"authorization": f"Bearer {client.credentials.bearer()}"}


def _refusals(admin: HubClient, actor: str) -> list[dict[str, Any]]:
    return admin.list_audit(actor=actor, action="access.refused", limit=500)


def _other_model(engineer: HubClient) -> int:
    """A version whose answers differ from the tiny model's (the 'always malignant' one)."""
    return engineer.upload_model(
        MODEL, make_tiny_onnx(n_features=4, n_classes=3), reference_npy=make_reference_npy()
    ).version


def _user(admin: HubClient, url: str, name: str, roles: list[str]) -> HubClient:
    password = secrets.token_urlsafe(18)
    admin.create_user(name, password, roles)
    with HubClient(url) as anonymous:
        tokens = anonymous.sign_in(name, password)
    return HubClient(
        url, credentials=UserCredentials(tokens["access_token"], tokens["refresh_token"], url)
    )


def test_an_experiment_cannot_put_an_unapproved_version_on_agents(
    admin: HubClient, engineer: HubClient, approver: HubClient, start_agent: Any
) -> None:
    production = publish(engineer, approver).version
    bad = _other_model(engineer)
    agent = start_agent("gov-ab")
    wait_until("production on the agent", lambda: serving_version(agent) == str(production))
    attack = {
        "name": "tilt",
        "model": MODEL,
        "zone": ZONE,
        "variants": [
            {"name": "control", "version": production, "weight": 0.001},
            {"name": "bad", "version": bad, "weight": 1000},
        ],
    }
    as_candidate = _refused(lambda: engineer.create_experiment(attack))
    assert as_candidate.status_code == 403 and "candidate" in str(as_candidate)
    engineer.change_stage(MODEL, bad, "staging")
    as_staging = _refused(lambda: engineer.create_experiment(attack))
    assert as_staging.status_code == 403
    assert "0 of 1 exposure approvals" in str(as_staging)
    assert all(e["status"] != "running" for e in engineer.list_experiments())
    reasons = [e["detail"]["reason"] for e in _refusals(admin, "user:alice")]
    assert any("A/B variant 'bad' refused" in r for r in reasons)
    answers = {_answer(agent.url, f"customer-{i}")["model_version"] for i in range(12)}
    assert answers == {str(production)}  # agents answered with production only

    # The author may not clear their own version; another approver may.
    self_approval = httpx.post(
        f"{engineer.base_url}/api/v1/models/{MODEL}/versions/{bad}/exposure",
        headers=_bearer(engineer),
        timeout=10,
    )
    assert self_approval.status_code == 403
    cleared = approver.approve_exposure(MODEL, bad)
    assert cleared.exposure_approvals == ["user:omar"]
    engineer.create_experiment({**attack, "name": "approved"})
    wait_until("the approved variant to serve", lambda: "bad" in _variants(agent.url))

    # Moving the version back clears its approvals: the next publication drops the variant,
    # although the experiment still names it.
    engineer.change_stage(MODEL, bad, "candidate")
    wait_until("the variant to leave the agent", lambda: _variants(agent.url) == {None})
    assert {_answer(agent.url, f"customer-{i}")["model_version"] for i in range(12)} == {
        str(production)
    }
    engineer.stop_experiment("approved")


def test_an_engineer_who_is_also_an_approver_cannot_roll_out_their_own_version(
    hub: ServiceProcess, admin: HubClient
) -> None:
    both = _user(admin, hub.url, "mona", ["ml-engineer", "approver"])
    with both:
        version = _other_model(both)
        both.change_stage(MODEL, version, "staging")
        spec = {
            "model": MODEL,
            "version": version,
            "zone": ZONE,
            "strategy": "all-at-once",
            "soak_s": 100000,
        }
        refused = _refused(lambda: both.start_rollout(spec))
        assert refused.status_code == 403 and "author" in str(refused)
        too_long = _refused(lambda: both.start_rollout({**spec, "soak_s": 10**7}))
        assert too_long.status_code == 422 and "soak_s" in str(too_long)
        assert all(r["version"] != version for r in both.list_rollouts())
        assert both.get_model(MODEL).versions[version - 1].stage == "staging"
    reasons = [e["detail"]["reason"] for e in _refusals(admin, "user:mona")]
    assert any("rollout refused" in r and "author" in r for r in reasons)


@pytest.fixture(scope="module")
def two_approvals_hub(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Site, ServiceProcess]]:
    site = bootstrap_site(tmp_path_factory.mktemp("two-approvals"), tls=False)
    fast = {"APPLIANCE_ROLLOUT_CHECK_S": "0.5"}
    with running_hub(site, "--approvals-required", "2", env=fast) as proc:
        yield site, proc


def test_one_approver_cannot_do_alone_what_the_site_requires_two_for(
    two_approvals_hub: tuple[Site, ServiceProcess],
) -> None:
    site, hub = two_approvals_hub
    with (
        site.client(hub.url, "alice") as alice,
        site.client(hub.url, "omar") as omar,
        site.client(hub.url, "fatima") as fatima,
        site.client(hub.url, "admin") as admin,
    ):
        version = alice.upload_model(MODEL, make_tiny_onnx()).version
        alice.change_stage(MODEL, version, "staging")
        spec = {
            "model": MODEL,
            "version": version,
            "zone": ZONE,
            "strategy": "all-at-once",
            "soak_s": 0,
        }
        alone = _refused(lambda: omar.start_rollout(spec))
        assert alone.status_code == 403 and "1 of 2 exposure approvals" in str(alone)
        assert omar.list_rollouts() == []

        # With a second approver's exposure approval the rollout starts; every ring passes
        # (no agents to fail a gate), but production needs two approvals and has only the
        # starter's: the rollout ends rolled back instead of serving on.
        fatima.approve_exposure(MODEL, version)
        started = omar.start_rollout(spec)

        def ended() -> dict[str, Any] | None:
            state = omar.rollout(started["id"])
            return state if state["state"] not in ("running", "paused") else None

        final = wait_until("the rollout to end", ended)
        assert final["state"] == "rolled_back"
        assert "promotion was refused" in final["steps"][-1]["note"]
        assert final["agents_reached"] == [] and final["agents_standby"] == []
        assert alice.get_model(MODEL).versions[0].stage == "staging"
        refusals = admin.list_audit(action="rollout.roll_back")
        assert [e["outcome"] for e in refusals] == ["refused"]


def test_a_worker_is_its_account_never_a_name_or_zone_in_the_body(
    site: Site, hub: ServiceProcess, admin: HubClient, engineer: HubClient
) -> None:
    """Finding 3: a second worker account named the lease holder in the body and got the
    patients' training set, then registered a forged result as the job's submitter."""
    load_clinic(engineer, ZONE)
    job = engineer.submit_training(job_spec("gov-clinic"))
    thief = _user(admin, hub.url, "gpu02", ["worker"])
    with site.client(hub.url, "gpu01") as gpu01, thief:
        zone_in_body = httpx.post(
            f"{hub.url}/api/v1/training/claim",
            json={"worker": "gpu01", "zone": "ae-auh"},
            headers=_bearer(thief),
            timeout=10,
        )
        assert zone_in_body.status_code == 400  # the body may not name a worker or a zone
        claimed = gpu01.claim_training(ClaimRequest())
        assert claimed is not None and (claimed.id, claimed.worker) == (job.id, "gpu01")

        stolen = httpx.post(
            f"{hub.url}/api/v1/training/jobs/{job.id}/dataset",
            json={"worker": "gpu01"},
            headers=_bearer(thief),
            timeout=30,
        )
        assert stolen.status_code == 409 and "not leased to gpu02" in stolen.text
        assert not stolen.content.startswith(b"PAR1")  # no Parquet, no patients
        for metadata in (
            {"worker": "gpu01", "verdict": "passed", "metrics": {"accuracy": 0.99}},
            {"verdict": "passed", "metrics": {"accuracy": 0.99}},
        ):
            forged = httpx.post(
                f"{hub.url}/api/v1/training/jobs/{job.id}/result",
                files={"model": ("m.onnx", make_tiny_onnx())},
                data={"metadata": json.dumps(metadata)},
                headers=_bearer(thief),
                timeout=30,
            )
            assert forged.status_code in (400, 409), forged.text
        assert all(m.name != "gov-clinic" for m in engineer.list_models())  # nothing registered
        assert engineer.training_job(job.id).state == "running"  # still gpu01's
        engineer.cancel_training(job.id)
