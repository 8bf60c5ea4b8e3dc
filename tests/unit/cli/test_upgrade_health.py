"""The upgrade's health check against a real HTTP server on loopback: a release that
answers 500 again and again is judged broken at once (and so rolled back in seconds, not
after the whole wait); one still starting (no answer, 503) or answering the old version is
waited for; a 500 now and then is not a verdict."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from appliance.cli.main import build_parser
from appliance.cli.upgrade.errors import UpgradeError
from appliance.cli.upgrade.services import HealthCheck

Serve = Callable[["Script"], str]
"""Starts a server that answers as the script says; its URL."""


class Script:
    """The answers the server gives, in order (the last one again and again)."""

    def __init__(self, *answers: tuple[int, dict[str, str]]) -> None:
        self.answers = list(answers)
        self.asked = 0

    def next(self) -> tuple[int, dict[str, str]]:
        self.asked += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def serve() -> Iterator[Callable[[Script], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = script.next()
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/health"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


BROKEN = (500, {"status_code": "500", "detail": "Internal Server Error"})
STARTING = (503, {"detail": "starting"})
OLD = (200, {"status": "ok", "version": "0.1.0"})
NEW = (200, {"status": "ok", "version": "0.1.1"})


def test_a_release_that_answers_500_three_times_in_a_row_is_broken(serve: Serve) -> None:
    script = Script(STARTING, BROKEN)
    check = HealthCheck(serve(script), timeout=600, every=0.01)

    with pytest.raises(UpgradeError) as refused:
        check.wait("0.1.1")

    assert script.asked == 4  # one 503, then three 500s: no waiting out the 600 s
    assert "answered 500 3 times in a row: the release is broken" in str(refused.value)
    assert "Internal Server Error" in str(refused.value)


def test_a_release_still_starting_or_erring_now_and_then_is_waited_for(serve: Serve) -> None:
    script = Script(STARTING, BROKEN, BROKEN, OLD, BROKEN, BROKEN, STARTING, NEW)
    check = HealthCheck(serve(script), timeout=600, every=0.01)

    check.wait("0.1.1")

    assert script.asked == 8


def test_no_threshold_waits_out_the_timeout(serve: Serve) -> None:
    script = Script(BROKEN)
    check = HealthCheck(serve(script), timeout=0.3, every=0.01, broken_after=0)

    with pytest.raises(UpgradeError, match=r"did not answer healthy with version 0\.1\.1 within"):
        check.wait("0.1.1")

    assert script.asked > 3


def test_the_threshold_is_the_operators_to_set() -> None:
    parser = build_parser()
    assert parser.parse_args(["upgrade", "--recover"]).health_failures == 3
    assert parser.parse_args(["upgrade", "--health-failures", "0"]).health_failures == 0
    with pytest.raises(SystemExit):
        parser.parse_args(["upgrade", "--health-failures", "-1"])
