"""Signing in: the good password opens the console; a bad one or no hub says so plainly."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appliance.cli.demo.processes import free_port
from tests.tui.conftest import LiveHub, header_text, sign_in, text_of, until
from tui import ConsoleApp, HubConnector
from tui.screens import SignInScreen

pytestmark = pytest.mark.anyio


async def test_good_password_opens_the_console(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "admin", live_hub.site.passwords["admin"])
        shown = await until(pilot, lambda: header_text(app))
        assert "user:admin (admin)" in shown


async def test_wrong_password_is_refused_in_the_screen(
    live_hub: LiveHub, console: Callable[..., ConsoleApp]
) -> None:
    app = console()
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "admin", "not-the-password")
        await until(pilot, lambda: "Wrong username or password" in text_of(app, "#sign-in-message"))
        assert isinstance(app.screen, SignInScreen)


async def test_unreachable_hub_is_named_not_traced() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    app = ConsoleApp(HubConnector(url, timeout=1.0), url)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(pilot, "admin", "whatever")
        message = await until(
            pilot, lambda: "Cannot reach the hub" in text_of(app, "#sign-in-message")
        )
        assert message
        assert "Traceback" not in text_of(app, "#sign-in-message")
