"""What a client presents to the hub: a user's tokens or an agent's own signature.

A :class:`HubClient` asks its credentials for a bearer token before each
request and, on a 401, gives them one chance to renew (a user's refresh
token); agents sign a fresh short token every time and have nothing to renew.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

from appliance.errors import AuthenticationError, ConfigError
from appliance.fsutil import atomic_write_bytes, file_lock
from appliance.security.agent_tokens import issue_agent_token
from appliance.security.keys import KeyPair


class Credentials(Protocol):
    def bearer(self) -> str | None: ...

    def renew(self, http: httpx.Client) -> bool:
        """Try to get a new token after a 401; True if the request is worth retrying."""
        ...


@dataclass
class AgentCredentials:
    key: KeyPair
    agent_id: int

    def bearer(self) -> str:
        return issue_agent_token(self.key, self.agent_id)

    def renew(self, http: httpx.Client) -> bool:
        return False


@dataclass
class UserCredentials:
    access_token: str
    refresh_token: str
    hub_url: str = ""
    hub_ca: str | None = None
    """The site CA pinned at sign-in, kept with the tokens for later commands."""
    session_file: Path | None = field(default=None, repr=False)

    def bearer(self) -> str:
        return self.access_token

    def renew(self, http: httpx.Client) -> bool:
        """A new pair for the refresh token. Each refresh token works once, so processes
        that share a session file (a playbook's parallel steps, two terminals) take turns
        under its lock, and one that finds the file already renewed by another takes that."""
        if self.session_file is None:
            return self._refresh(http)
        with file_lock(self.session_file.with_name(self.session_file.name + ".lock")):
            try:
                on_disk = UserCredentials.load(self.session_file)
            except (AuthenticationError, ConfigError):
                on_disk = None
            if on_disk is not None and on_disk.refresh_token != self.refresh_token:
                self.access_token, self.refresh_token = on_disk.access_token, on_disk.refresh_token
                return True
            return self._refresh(http)

    def _refresh(self, http: httpx.Client) -> bool:
        response = http.post("/api/v1/auth/refresh", json={"refresh_token": self.refresh_token})
        if response.status_code != 200:
            return False
        body = response.json()
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]
        if self.session_file is not None:
            self.save(self.session_file)
        return True

    def save(self, path: Path) -> None:
        data = {
            "hub_url": self.hub_url,
            "hub_ca": self.hub_ca,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
        }
        atomic_write_bytes(path, json.dumps(data).encode(), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> UserCredentials:
        try:
            data = json.loads(path.read_text())
            return cls(
                data["access_token"],
                data["refresh_token"],
                data.get("hub_url", ""),
                hub_ca=data.get("hub_ca"),
                session_file=path,
            )
        except FileNotFoundError as exc:
            raise AuthenticationError(
                "not signed in", hint="run 'appliance login --hub URL --username NAME'"
            ) from exc
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"session file {path} is damaged", hint="run 'appliance login' again"
            ) from exc


def default_session_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return Path(os.environ.get("APPLIANCE_SESSION_FILE", base / "appliance" / "session.json"))
