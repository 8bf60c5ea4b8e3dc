"""Write an SVG and a plain-text capture of each main console screen (80x24 and 120x40)
and of each dialog (80x24) into docs/console/.

Run from the repository root: ``.venv/bin/python -m docs.console.capture``
(or ``python docs/console/capture.py``). The console runs over the fixed hub
double of the snapshot tests, so the captures match the committed snapshots.
"""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from rich.console import Console
from textual.widgets import Input

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.tui.fixed_hub import PASSWORD, fixed_app  # noqa: E402
from tui import ConsoleApp  # noqa: E402

OUT = Path(__file__).resolve().parent
SCREENS = {
    "sign-in": (),
    "fleet": ("1",),
    "models": ("2",),
    "audit": ("3", "v"),
    "training": ("4",),
    "workers": ("4", "w"),
    "rollouts": ("5",),
    "experiments": ("5", "e"),
    "drift": ("6",),
}
DIALOGS = {
    "agent-details": ("1", "down", "enter"),
    "enrol-form": ("1", "e"),
    "export-form": ("1", "u"),
    "rollout-form": ("2", "o"),
    "promote-rollout": ("5", "n"),
    "promote-winner": ("5", "e", "w"),
}


def screen_text(app: ConsoleApp) -> str:
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def capture(name: str, keys: tuple[str, ...], size: tuple[int, int]) -> None:
    app = fixed_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        if keys:
            app.screen.query_one("#password", Input).value = PASSWORD
            await pilot.press("enter")
            for _ in range(100):
                if app.screen.sub_title:
                    break
                await pilot.pause(0.02)
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press(*keys)
            for _ in range(2):  # a selection's own fetch (a log tail, drift windows) comes second
                await app.workers.wait_for_complete()
                await pilot.pause()
        await pilot.pause()
        stem = f"{name}-{size[0]}x{size[1]}"
        app.save_screenshot(f"{stem}.svg", path=str(OUT))
        (OUT / f"{stem}.txt").write_text(screen_text(app))


async def main(args: list[str]) -> None:
    """Every screen and dialog, or those named on the command line (``capture.py drift``)."""
    wanted = [
        *((name, keys, size) for name, keys in SCREENS.items() for size in ((80, 24), (120, 40))),
        *((name, keys, (80, 24)) for name, keys in DIALOGS.items()),
    ]
    for name, keys, size in wanted:
        if not args or name in args:
            await capture(name, keys, size)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
