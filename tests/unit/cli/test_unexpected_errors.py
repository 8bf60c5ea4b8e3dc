"""A defect in a command shows the user one clear line, never a Python traceback (the
hub host's upgrade on Debian 12 once ended in one); the traceback is kept in a private
file the line names, for the bug report."""

from __future__ import annotations

import argparse
import re
import stat
from pathlib import Path

import pytest

from appliance.cli import main as cli
from appliance.cli.upgrade import command as upgrade
from appliance.errors import ApplianceError


def test_an_unexpected_exception_is_one_line_and_its_traceback_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(args: argparse.Namespace) -> int:
        raise TypeError("extractall() got an unexpected keyword argument [filter]")

    monkeypatch.setattr(upgrade, "cmd_upgrade", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again

    code = cli.main(["upgrade", "--recover"])

    said = capsys.readouterr()
    assert code == 70
    assert "Traceback" not in said.out + said.err
    text = " ".join(said.err.split())  # the console wraps long lines
    assert "unexpected TypeError: extractall() got an unexpected keyword argument [filter]" in text
    found = re.search(r"traceback is in (\S+):", text)
    assert found is not None, text
    kept = Path(found.group(1))
    assert kept.parent == tmp_path and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert "Traceback" in kept.read_text() and "def broken" not in said.err
    assert "in broken" in kept.read_text()


def test_an_error_and_its_hint_are_shown_as_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Brackets in an error are text: a model named in them stayed hidden, and a hint with
    a path in them ended in a MarkupError traceback."""

    def refused(args: argparse.Namespace) -> int:
        raise ApplianceError("no model [fraud] at [bold]v3", hint="look in [/var/lib/appliance]")

    monkeypatch.setattr(upgrade, "cmd_upgrade", refused)

    code = cli.main(["upgrade", "--recover"])

    said = capsys.readouterr()
    assert code == 2 and "Traceback" not in said.err
    text = " ".join(said.err.split())
    assert "error: no model [fraud] at [bold]v3" in text
    assert "hint: look in [/var/lib/appliance]" in text
