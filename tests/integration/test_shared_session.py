"""Issue 16, item 4: a playbook's parallel steps share the admin's session file; each
refresh token works once, so the second process to renew found its token used and the
run failed with 'sign in again'. Processes now take turns renewing, and one that finds the
file renewed by another takes the new pair. Against a real hub and its real tokens."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.security.credentials import UserCredentials

pytestmark = pytest.mark.integration


def test_two_holders_of_one_session_file_both_renew(
    site: Site, hub: ServiceProcess, tmp_path: Path
) -> None:
    path = site.session_file(hub.url, "admin", tmp_path / "session.json")
    first, second = UserCredentials.load(path), UserCredentials.load(path)
    with httpx.Client(base_url=hub.url) as http:
        assert first.renew(http) is True  # the first process's access token ran out
        assert second.renew(http) is True  # so did the second's, with the same refresh token

    assert (second.access_token, second.refresh_token) == (
        first.access_token,
        first.refresh_token,
    )
    with HubClient(hub.url, credentials=second) as admin:
        admin.list_models()  # the adopted pair works


def test_a_used_refresh_token_is_still_refused_without_the_file(
    site: Site, hub: ServiceProcess
) -> None:
    """Adopting goes through the session file only: a copy of the tokens held elsewhere
    gets no second use of a refresh token."""
    first = site.sign_in(hub.url, "admin")
    copy = UserCredentials(first.access_token, first.refresh_token, hub.url)
    with httpx.Client(base_url=hub.url) as http:
        assert first.renew(http) is True
        assert copy.renew(http) is False
