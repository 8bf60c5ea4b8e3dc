"""Runs a download to a file on a worker thread, with a progress bar, until it ends.

The hub's client streams into ``FILE.part`` and renames it when complete, without
saying the size to expect; so the bar follows the growing ``.part`` file (the bytes
received so far, the bar itself pulsing: the total is not known), and fills when the
file is complete. The dialog closes only then, saying what was written or why not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, ProgressBar, Static

from appliance.errors import ApplianceError
from tui.hub import describe

POLL_S = 0.2


class DownloadDialog(ModalScreen[bool]):
    """Answers True once ``fetch`` wrote ``dest``; False when it failed."""

    DEFAULT_CSS = """
    DownloadDialog { align: center middle; }
    DownloadDialog > Vertical {
        width: 68; max-width: 98%; height: auto;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    DownloadDialog .title { text-style: bold; margin-bottom: 1; }
    DownloadDialog ProgressBar { margin: 1 0; }
    DownloadDialog #download-status.failed { color: $text-error; text-style: bold; }
    DownloadDialog Horizontal { height: auto; align-horizontal: right; }
    """
    BINDINGS = [Binding("escape,enter", "close", "Close")]

    def __init__(self, title: str, dest: Path, fetch: Callable[[], str]) -> None:
        super().__init__()
        self.title_text = title
        self.dest = dest
        self.fetch = fetch
        self.ok: bool | None = None
        """None while it runs."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title", markup=False)
            yield Static(f"to {self.dest}", markup=False)
            yield ProgressBar(total=None, show_eta=False, id="download-bar")
            yield Static("waiting for the hub…", id="download-status", markup=False)
            with Horizontal():
                yield Button("Close", id="close", variant="primary", disabled=True)

    def on_mount(self) -> None:
        self.poll = self.set_interval(POLL_S, self._received)
        self.download()

    @work(thread=True, group="download")
    def download(self) -> None:
        try:
            said = self.fetch()
        except ApplianceError as exc:
            self.app.call_from_thread(self._ended, False, describe(exc))
        except OSError as exc:
            self.app.call_from_thread(
                self._ended, False, f"Cannot write {self.dest}: {exc.strerror or exc}"
            )
        else:
            self.app.call_from_thread(self._ended, True, said)

    def _received(self) -> None:
        part = self.dest.with_name(self.dest.name + ".part")
        try:
            size = part.stat().st_size
        except OSError:
            return  # not started yet (the hub is packing the bundle) or already renamed
        self.query_one("#download-status", Static).update(f"{_size(size)} received…")

    def _ended(self, ok: bool, said: str) -> None:
        self.poll.stop()
        self.ok = ok
        bar = self.query_one(ProgressBar)
        status = self.query_one("#download-status", Static)
        if ok:
            size = self.dest.stat().st_size
            bar.update(total=max(size, 1), progress=max(size, 1))
            status.update(f"{_size(size)} written. {said}")
        else:
            bar.display = False
            status.add_class("failed")
            status.update(said)
        close = self.query_one("#close", Button)
        close.disabled = False
        close.focus()

    def on_button_pressed(self) -> None:
        self.action_close()

    def action_close(self) -> None:
        if self.ok is not None:
            self.dismiss(self.ok)


def _size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 100_000 else f"{count:,} bytes"
