"""Issue 16: a release archive unpacks on the Python hosts really have (Debian 12's 3.11.2
has no ``extractall(filter=...)``), and a hostile one is refused before anything is
written, with Python's extraction filter or without it."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.cli.upgrade.install import extract_release


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _folder(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, None


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, None


@pytest.fixture(params=["with the data filter", "as on Python 3.11.2"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "as on Python 3.11.2":
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        original = tarfile.TarFile.extractall

        def without_filter(self: tarfile.TarFile, *args: object, **kwargs: object) -> None:
            if "filter" in kwargs:  # 3.11.2's signature
                raise TypeError("extractall() got an unexpected keyword argument 'filter'")
            original(self, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(tarfile.TarFile, "extractall", without_filter)
    return str(request.param)


def test_a_release_unpacks_with_plain_modes(python: str, tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "good.tar",
        _folder("appliance-agent-0.1.1"),
        _file("appliance-agent-0.1.1/MANIFEST.json", b"{}"),
        _file("appliance-agent-0.1.1/run.sh", b"#!/bin/sh\n", mode=0o6777),
    )
    with tarfile.open(archive) as tar:
        extract_release(tar, tmp_path / "out")

    top = tmp_path / "out" / "appliance-agent-0.1.1"
    assert (top / "MANIFEST.json").read_bytes() == b"{}"
    assert (top / "run.sh").stat().st_mode & 0o7777 == 0o755  # no set-id, no group write


@pytest.mark.parametrize(
    "hostile",
    [
        lambda: _file("../escaped"),
        lambda: _file("/etc/escaped"),
        lambda: _file("appliance-agent-0.1.1/../../escaped"),
        lambda: _link("appliance-agent-0.1.1/passwd", "/etc/passwd"),
        lambda: _link("appliance-agent-0.1.1/hard", "/etc/passwd", tarfile.LNKTYPE),
        lambda: _device("appliance-agent-0.1.1/null"),
    ],
    ids=["up", "absolute", "up-inside", "symlink", "hardlink", "device"],
)
def test_a_hostile_member_refuses_the_whole_archive_before_writing(
    python: str, hostile: Callable[[], tuple[tarfile.TarInfo, bytes | None]], tmp_path: Path
) -> None:
    archive = _archive(
        tmp_path / "bad.tar",
        _folder("appliance-agent-0.1.1"),
        _file("appliance-agent-0.1.1/MANIFEST.json", b"{}"),
        hostile(),
    )
    out = tmp_path / "out"
    out.mkdir()
    with tarfile.open(archive) as tar, pytest.raises(tarfile.TarError):
        extract_release(tar, out)

    assert list(out.iterdir()) == []
    assert not (tmp_path / "escaped").exists()
