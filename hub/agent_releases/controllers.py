"""Agent releases over HTTP: upload (admins), list and read (anyone who reads agents),
download the archive (admins, and enrolled agents upgrading themselves)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import File

from appliance.wire.fleet import AgentReleaseInfo
from hub.agent_releases.service import AgentReleases
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission as P
from hub.multipart import Multipart, upload_stream


class AgentReleaseController(Controller):
    """One release: what it is, and its archive."""

    path = "/api/v1/agent-releases/{version:str}"
    tags = ["agent releases"]

    @get(
        "/",
        operation_id="getAgentRelease",
        guards=[requires(P.AGENTS_READ, P.AGENT_SELF)],
        sync_to_thread=True,
    )
    def get_one(self, version: str, agent_releases: AgentReleases) -> AgentReleaseInfo:
        return agent_releases.get(version)

    @get(
        "/archive",
        operation_id="downloadAgentRelease",
        guards=[requires(P.AGENTS_UPGRADE, P.AGENT_SELF)],
        sync_to_thread=True,
    )
    def download(self, version: str, agent_releases: AgentReleases) -> File:
        """The signed archive as uploaded (agents check it again before installing)."""
        info = agent_releases.get(version)
        return File(
            path=agent_releases.path(version),
            filename=f"{info.name}.tar",
            media_type="application/x-tar",
            headers={"X-Archive-SHA256": info.archive_sha256},
        )


class AgentReleaseUploadController(Controller):
    """The collection: listing it, and uploading to it. Mounted with the site's upload
    limit (one path's methods live in one controller)."""

    path = "/api/v1/agent-releases"
    tags = ["agent releases"]

    @get(
        "/",
        operation_id="listAgentReleases",
        guards=[requires(P.AGENTS_READ)],
        sync_to_thread=True,
    )
    def list_all(self, agent_releases: AgentReleases) -> list[AgentReleaseInfo]:
        return agent_releases.list()

    @post(
        "/",
        operation_id="uploadAgentRelease",
        guards=[requires(P.AGENTS_UPGRADE)],
        sync_to_thread=True,
    )
    def upload(
        self, data: Multipart, agent_releases: AgentReleases, request: Request[Any, Any, Any]
    ) -> AgentReleaseInfo:
        """The ``archive`` part: ``appliance-agent-<version>.tar``, signed with the site's
        release key (``APPLIANCE_RELEASE_KEY``); refused, and audited, otherwise."""
        return agent_releases.upload(upload_stream(data, "archive"), principal_of(request))
