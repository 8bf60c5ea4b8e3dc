"""Issue 16, item 4: an agent tells the hub a URL the hub and the console can reach, not
its bind address (an agent bound to 0.0.0.0 on a VM registered ``http://127.0.0.1:8701``)."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from agent.app import advertised_url
from appliance.errors import ConfigError
from appliance.settings import AgentSettings, ServingSettings

BASE = AgentSettings(hub_url="https://hub:8700", agent_port=8701)


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", ""])
def test_an_agent_bound_to_every_address_advertises_the_machines_name(bind: str) -> None:
    assert advertised_url(replace(BASE, host=bind)) == f"https://{socket.getfqdn()}:8701"


def test_an_agent_bound_to_one_address_advertises_it() -> None:
    assert advertised_url(replace(BASE, host="10.4.0.7")) == "https://10.4.0.7:8701"
    assert advertised_url(replace(BASE, host="fd00::7")) == "https://[fd00::7]:8701"
    plain = replace(BASE, host="127.0.0.1", serving=ServingSettings(plain_http=True))
    assert advertised_url(plain) == "http://127.0.0.1:8701"


def test_a_configured_url_wins() -> None:
    given = replace(BASE, host="0.0.0.0", agent_url="https://edge-7.branch.example:8443/")
    assert advertised_url(given) == "https://edge-7.branch.example:8443"


@pytest.mark.parametrize("bad", ["edge-7:8701", "ftp://edge-7", "https://:8701"])
def test_a_url_without_scheme_or_host_is_refused_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match="APPLIANCE_AGENT_URL"):
        advertised_url(replace(BASE, agent_url=bad))
