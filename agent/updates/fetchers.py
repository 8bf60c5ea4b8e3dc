"""python-tuf fetchers: one for the hub over HTTP, one for an offline update bundle.

Both implement ``tuf.ngclient.FetcherInterface``; the updater bounds every
download by the length the signed metadata allows and checks hashes, so a
fetcher only has to move bytes and never hang. The HTTP fetcher therefore
enforces two clocks: a read timeout per wait, and a minimum average rate after
a grace period, so a server that trickles bytes cannot hold an agent for ever.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
from tuf.api import exceptions
from tuf.ngclient.fetcher import FetcherInterface

from appliance.client.hub import HubClient
from appliance.errors import HubUnavailableError
from appliance.trust.offline import URL_SCHEME, OfflineBundle


@dataclass(frozen=True)
class FetchLimits:
    read_timeout: float = 30.0
    """Longest wait for the next bytes."""
    grace_seconds: float = 30.0
    """Time allowed before the average-rate rule applies."""
    min_bytes_per_second: float = 64 * 1024
    """Slowest average transfer accepted after the grace period."""


class StalledDownloadError(exceptions.DownloadError):
    """The server sent too little, too slowly."""


class HubFetcher(FetcherInterface):
    def __init__(self, client: HubClient, limits: FetchLimits | None = None) -> None:
        self.client = client
        self.limits = limits or FetchLimits()

    def _fetch(self, url: str) -> Iterator[bytes]:
        # Opened eagerly so HTTP errors surface from fetch(), as the interface expects.
        stack = ExitStack()
        try:
            response = stack.enter_context(
                self.client.stream(url, read_timeout=self.limits.read_timeout)
            )
        except HubUnavailableError as exc:
            raise exceptions.DownloadError(str(exc)) from exc
        if response.status_code >= 400:
            stack.close()
            raise exceptions.DownloadHTTPError(
                f"hub answered {response.status_code} for {url}", response.status_code
            )
        return self._chunks(stack, response, url)

    def _chunks(self, stack: ExitStack, response: httpx.Response, url: str) -> Iterator[bytes]:
        limits = self.limits
        started = time.monotonic()
        received = 0
        with stack:
            try:
                for chunk in response.iter_bytes():
                    received += len(chunk)
                    elapsed = time.monotonic() - started - limits.grace_seconds
                    if elapsed > 0 and received < elapsed * limits.min_bytes_per_second:
                        raise StalledDownloadError(
                            f"download of {url} stalled: {received} bytes in "
                            f"{elapsed + limits.grace_seconds:.0f} s"
                        )
                    yield chunk
            except httpx.HTTPError as exc:
                raise exceptions.DownloadError(f"download of {url} failed: {exc!r}") from exc


class OfflineFetcher(FetcherInterface):
    """Answers ``offline:/metadata/…`` and ``offline:/targets/…`` from the bundle's members."""

    def __init__(self, bundle: OfflineBundle) -> None:
        self.bundle = bundle

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = url.removeprefix(URL_SCHEME + "/")
        if name == url or not self.bundle.has(name):
            raise exceptions.DownloadHTTPError(f"{name} is not in the update bundle", 404)
        return self.bundle.chunks(name)
