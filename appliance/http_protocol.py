"""uvicorn's HTTP protocol (httptools), with idle connections dropped at once on shutdown.

On SIGTERM uvicorn closes each idle keep-alive connection and waits until all are gone.
Over TLS, closing first sends close_notify and waits for the client's, which a client
idle in its connection pool never sends: every stop or upgrade of a hub or agent that
had a client connected (agents keep theirs to the hub) took the whole graceful timeout,
10 s, and ended with "timeout graceful shutdown exceeded". An idle connection carries no
request, so :class:`HttpProtocol` aborts it; one mid-request still finishes its answer.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HttpProtocol(HttpToolsProtocol):
    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()  # idle: nothing to finish, no close_notify to wait for
        else:
            super().shutdown()  # answers this request, then closes
