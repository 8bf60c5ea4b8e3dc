"""The installer archive format: lock files, SHA256SUMS, the signature and the checks that
refuse a tampered, incomplete, padded or hostile archive (small archives built here)."""

from __future__ import annotations

import ast
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from appliance.cli.release import build as builder
from appliance.cli.release.build import Dist, Entry, canonical_name, lock_text, write_archive
from appliance.cli.release.cli import main as cli_main
from appliance.security.keys import KeyPair, init_keypair
from appliance.security.release_archives import (
    SIG_NAME,
    SUMS_NAME,
    ArchiveRefused,
    format_sums,
    load_public_key,
    parse_sums,
    verify_path,
    verify_tree,
)

ROOT = Path(__file__).resolve().parents[3]
TOP = "appliance-agent-9.9.9"


@pytest.fixture
def key(tmp_path: Path) -> KeyPair:
    return init_keypair(tmp_path / "key", "release")


@pytest.fixture
def public(tmp_path: Path, key: KeyPair) -> Path:
    return tmp_path / "key" / "release.pub"


def _entries(tmp_path: Path) -> list[Entry]:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK" + bytes(range(256)) * 40)
    return [
        Entry("wheels/demo-1.0-py3-none-any.whl", wheel),
        Entry("requirements-agent.txt", b"demo==1.0 \\\n    --hash=sha256:00\n"),
        Entry("ansible/site.yml", b"---\n"),
        Entry("ansible/roles/common/files/verify_archive.py", b"print()\n", executable=True),
    ]


def _build(tmp_path: Path, key: KeyPair, name: str = "a.tar") -> Path:
    entries = _entries(tmp_path)
    hashes = {entry.name: entry.sha256() for entry in entries}
    path = tmp_path / name
    write_archive(path, TOP, entries, hashes, key, 1_700_000_000)
    return path


def _rewrite(source: Path, target: Path, change: dict[str, bytes | None]) -> None:
    """Copy a tar, replacing (bytes) or dropping (None) the named members' data."""
    with tarfile.open(source) as old, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as new:
        for member in old:
            rest = member.name.partition("/")[2]
            if rest in change:
                data = change[rest]
                if data is None:
                    continue
                member.size = len(data)
                new.addfile(member, io.BytesIO(data))
            elif member.isfile():
                new.addfile(member, old.extractfile(member))
            else:
                new.addfile(member)


def test_a_fresh_archive_verifies(tmp_path: Path, key: KeyPair, public: Path) -> None:
    archive = _build(tmp_path, key)
    result = verify_path(archive, public)
    assert result.top == TOP
    assert sorted(result.files) == sorted(e.name for e in _entries(tmp_path))
    assert result.key_id == key.key_id
    assert len(result.sums_sha256) == 64


def test_the_archive_is_reproducible(tmp_path: Path, key: KeyPair) -> None:
    first = _build(tmp_path, key, "one.tar").read_bytes()
    assert _build(tmp_path, key, "two.tar").read_bytes() == first


def test_members_have_fixed_owners_and_modes(tmp_path: Path, key: KeyPair) -> None:
    with tarfile.open(_build(tmp_path, key)) as tar:
        members = {m.name: m for m in tar}
    assert all(m.uid == 0 and m.gid == 0 and m.mtime == 1_700_000_000 for m in members.values())
    assert members[f"{TOP}/ansible/roles/common/files/verify_archive.py"].mode == 0o755
    assert members[f"{TOP}/requirements-agent.txt"].mode == 0o644
    assert members[f"{TOP}/wheels"].isdir()


def test_a_flipped_byte_is_refused_naming_the_file(
    tmp_path: Path, key: KeyPair, public: Path
) -> None:
    archive = _build(tmp_path, key)
    with tarfile.open(archive) as tar:
        member = tar.getmember(f"{TOP}/wheels/demo-1.0-py3-none-any.whl")
    data = bytearray(archive.read_bytes())
    data[member.offset_data + 100] ^= 0x01
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveRefused, match=r"wheels/demo-1\.0-py3-none-any\.whl was altered"):
        verify_path(archive, public)


def test_an_altered_checksum_list_breaks_the_signature(
    tmp_path: Path, key: KeyPair, public: Path
) -> None:
    archive = _build(tmp_path, key)
    with tarfile.open(archive) as tar:
        sums = tar.extractfile(f"{TOP}/{SUMS_NAME}").read()  # type: ignore[union-attr]
    forged = tmp_path / "forged.tar"
    _rewrite(archive, forged, {SUMS_NAME: sums.replace(b"0", b"1", 1)})
    with pytest.raises(ArchiveRefused, match=r"SHA256SUMS\.sig does not verify"):
        verify_path(forged, public)


def test_another_key_is_refused(tmp_path: Path, key: KeyPair) -> None:
    archive = _build(tmp_path, key)
    init_keypair(tmp_path / "other", "release")
    with pytest.raises(ArchiveRefused, match="does not verify with the pinned release key"):
        verify_path(archive, tmp_path / "other" / "release.pub")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ansible/site.yml": None}, r"ansible/site\.yml is listed in SHA256SUMS but missing"),
        ({SIG_NAME: None}, r"SHA256SUMS\.sig is missing: the archive is not signed"),
        ({SUMS_NAME: None}, r"SHA256SUMS is missing"),
    ],
)
def test_missing_files_are_refused(
    tmp_path: Path, key: KeyPair, public: Path, change: dict[str, bytes | None], message: str
) -> None:
    archive = _build(tmp_path, key)
    broken = tmp_path / "broken.tar"
    _rewrite(archive, broken, change)
    with pytest.raises(ArchiveRefused, match=message):
        verify_path(broken, public)


def test_an_unlisted_file_is_refused(tmp_path: Path, key: KeyPair, public: Path) -> None:
    archive = _build(tmp_path, key)
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(f"{TOP}/wheels/evil-1.0-py3-none-any.whl")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(ArchiveRefused, match=r"wheels/evil-1\.0-py3-none-any\.whl is not listed"):
        verify_path(archive, public)


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        (f"{TOP}/wheels/link.whl", tarfile.SYMTYPE, "not a regular file"),
        (f"{TOP}/../escape.txt", tarfile.REGTYPE, "unsafe path"),
        ("/etc/passwd", tarfile.REGTYPE, "unsafe path"),
        ("other-top/file.txt", tarfile.REGTYPE, "outside the archive's folder"),
    ],
)
def test_hostile_members_are_refused(
    tmp_path: Path, key: KeyPair, public: Path, name: str, kind: bytes, message: str
) -> None:
    archive = _build(tmp_path, key)
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = "/etc/shadow" if kind == tarfile.SYMTYPE else ""
        tar.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with pytest.raises(ArchiveRefused, match=message):
        verify_path(archive, public)


def test_a_duplicate_member_is_refused(tmp_path: Path, key: KeyPair, public: Path) -> None:
    archive = _build(tmp_path, key)
    with tarfile.open(archive, "a") as tar:
        info = tarfile.TarInfo(f"{TOP}/ansible/site.yml")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"---\n"))
    with pytest.raises(ArchiveRefused, match="appears twice"):
        verify_path(archive, public)


def test_not_a_tar_is_refused(tmp_path: Path, public: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(ArchiveRefused, match="not a readable tar archive"):
        verify_path(junk, public)


def test_an_unpacked_folder_is_checked_too(tmp_path: Path, key: KeyPair, public: Path) -> None:
    archive = _build(tmp_path, key)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    folder = tmp_path / "x" / TOP
    assert verify_tree(folder, load_public_key(public)).top == TOP
    (folder / "ansible" / "site.yml").write_text("--- # changed\n")
    with pytest.raises(ArchiveRefused, match=r"ansible/site\.yml was altered"):
        verify_path(folder, public)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_standard_tools_verify_it_too(tmp_path: Path, key: KeyPair, public: Path) -> None:
    """``openssl pkeyutl -rawin`` (OpenSSL 3) and ``sha256sum -c`` need no appliance."""
    with tarfile.open(_build(tmp_path, key)) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    folder = tmp_path / "x" / TOP
    openssl = subprocess.run(
        [
            *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin"),
            *("-in", SUMS_NAME, "-sigfile", SIG_NAME),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if "rawin" in openssl.stderr and openssl.returncode != 0:
        pytest.skip("this openssl has no -rawin (OpenSSL < 3)")
    assert openssl.returncode == 0, openssl.stderr
    if shutil.which("sha256sum"):
        subprocess.run(
            ["sha256sum", "--check", "--strict", "--quiet", SUMS_NAME], cwd=folder, check=True
        )


def test_sums_round_trip_and_refuse_malformed_lines() -> None:
    sums = {"b/c.txt": "a" * 64, "a.txt": "0" * 64}
    text = format_sums(sums)
    assert text.splitlines()[0] == f"{'0' * 64}  a.txt".encode()
    assert parse_sums(text) == sums
    for bad in (b"xyz  a.txt\n", f"{'a' * 64} a.txt\n".encode(), f"{'a' * 64}  ../x\n".encode()):
        with pytest.raises(ArchiveRefused):
            parse_sums(bad)
    with pytest.raises(ArchiveRefused, match="twice"):
        parse_sums(f"{'a' * 64}  x\n{'b' * 64}  x\n".encode())


def test_lock_files_pin_every_wheel_with_its_hash(tmp_path: Path) -> None:
    dists = [
        Dist("numpy", "2.4.6", tmp_path / "numpy-2.4.6-cp311.whl", "1" * 64),
        Dist("appliance", "0.1.0", tmp_path / "appliance-0.1.0-py3-none-any.whl", "2" * 64),
    ]
    text = lock_text("agent", dists)
    assert "appliance==0.1.0 \\\n    --hash=sha256:" + "2" * 64 in text
    assert text.index("appliance==") < text.index("numpy==")
    assert "--no-index" in text and "--require-hashes" in text
    loose = lock_text("agent", dists[:1], no_deps=True)
    assert "--no-deps" in loose and "requirements-agent-nodeps.txt" in loose


def test_roles_and_kinds() -> None:
    assert builder.KINDS == {"hub": ("hub", "worker"), "agent": ("agent",)}
    assert "torch" not in str(builder.ROLES["agent"])
    assert builder.ROLES["agent"].no_deps == (f"alibi-detect=={builder.ALIBI_DETECT}",)
    makefile = (ROOT / "Makefile").read_text()
    assert f"ALIBI_DETECT := {builder.ALIBI_DETECT}" in makefile
    assert canonical_name("Typing_Extensions") == "typing-extensions"
    assert canonical_name("ruamel.yaml") == "ruamel-yaml"


def test_pip_reports_are_read(tmp_path: Path) -> None:
    report = {
        "install": [
            {
                "metadata": {"name": "PyYAML", "version": "6.0.3"},
                "download_info": {
                    "url": "file:///opt/files/pyyaml-6.0.3-cp311-cp311-manylinux.whl",
                    "archive_info": {"hashes": {"sha256": "ab" * 32}},
                },
            },
            {
                "metadata": {"name": "toml", "version": "0.10.2"},
                "download_info": {
                    "url": "https://host/packages/toml-0.10.2.tar.gz",
                    "archive_info": {"hash": "sha256=" + "cd" * 32},
                },
            },
        ]
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    first, second = builder._parse_report(path)
    assert (first.name, first.version, first.sha256) == ("pyyaml", "6.0.3", "ab" * 32)
    assert first.filename == "pyyaml-6.0.3-cp311-cp311-manylinux.whl"
    assert (second.name, second.sha256, second.filename) == (
        "toml",
        "cd" * 32,
        "toml-0.10.2.tar.gz",
    )


def test_the_verifier_needs_only_the_standard_library_and_cryptography() -> None:
    """The playbooks run it with the control node's Python (which has cryptography)."""
    source = (ROOT / "appliance" / "security" / "release_archives.py").read_text()
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) == {"cryptography"}


def test_the_ansible_role_ships_this_verifier() -> None:
    link = ROOT / "ansible" / "roles" / "common" / "files" / "verify_archive.py"
    assert link.resolve() == (ROOT / "appliance" / "security" / "release_archives.py").resolve()


def test_the_role_installs_offline_only() -> None:
    pip_vars = (ROOT / "ansible" / "roles" / "common" / "vars" / "main.yml").read_text()
    for needle in ("--no-index", "--require-hashes", 'PIP_NO_INDEX: "1"', "PIP_CONFIG_FILE"):
        assert needle in pip_vars


def test_cli_verify_exit_codes(
    tmp_path: Path, key: KeyPair, public: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = _build(tmp_path, key)
    assert cli_main(["verify", str(archive), "--public-key", str(public)]) == 0
    assert f"verified {TOP}" in capsys.readouterr().out
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        offset = tar.getmember(f"{TOP}/ansible/site.yml").offset_data
    data[offset] ^= 0x20
    archive.write_bytes(bytes(data))
    assert cli_main(["verify", str(archive), "--public-key", str(public)]) == 1
    assert "refused:" in capsys.readouterr().err


def test_cli_build_needs_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["build", "agent", "--out", str(tmp_path)]) == 2
    assert "--signing-key" in capsys.readouterr().err


def test_cli_keygen_refuses_to_overwrite(tmp_path: Path) -> None:
    assert cli_main(["keygen", "--out", str(tmp_path / "k")]) == 0
    assert (tmp_path / "k" / "release.key").stat().st_mode & 0o777 == 0o600
    assert cli_main(["keygen", "--out", str(tmp_path / "k")]) == 2


def test_unknown_kinds_are_refused(tmp_path: Path, key: KeyPair) -> None:
    options = builder.BuildOptions(project=ROOT, out=tmp_path, key=key)
    with pytest.raises(builder.BuildError, match="unknown archive kind"):
        builder.build(["gpu"], options, log=lambda _: None)
