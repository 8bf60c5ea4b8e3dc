"""A hub without a pinned release key takes no agent release, and says how to give it one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from appliance.errors import ConflictError
from tests.harness.trust import ADMIN, hub_services


def test_a_hub_without_a_release_key_refuses_agent_releases_naming_the_setting(
    tmp_path: Path,
) -> None:
    services = hub_services(tmp_path / "hub")

    with pytest.raises(ConflictError) as refused:
        services.agent_releases.upload(io.BytesIO(b"an archive"), ADMIN)

    assert "APPLIANCE_RELEASE_KEY" in (refused.value.hint or "")
    assert services.agent_releases.list() == []
    assert not (tmp_path / "hub" / "agent-releases").exists()
