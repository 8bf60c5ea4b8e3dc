"""Reading, verifying and moving model bundles.

Verification is pure with respect to the network: it reads a folder and the
trusted keys and either returns the manifest or raises a specific
:class:`~appliance.errors.BundleError`. Packing and unpacking move a bundle as
one uncompressed tar; unpacking refuses anything but plain files at the top
level and stops at a byte limit.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from appliance.bundle.manifest import (
    BUNDLE_FORMAT,
    MANIFEST_FILE,
    ONNX_FILE,
    Manifest,
    TestVector,
    Tolerance,
)
from appliance.bundle.tensors import from_wire
from appliance.errors import BundleFormatError, IntegrityError, TestVectorError
from appliance.fsutil import sha256_file
from appliance.security.signing import verify_document

InferFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def verify_bundle(
    folder: Path, trusted: Iterable[Ed25519PublicKey] | None, *, check_hashes: bool = True
) -> Manifest:
    """Check signature, then every file's length and SHA-256; refuse extras.

    ``trusted=None`` skips the manifest signature: the bundle reached the agent as
    a TUF target whose length and hashes were verified against signed metadata.
    ``check_hashes=False`` checks lengths only, for bytes vouched for as a whole.
    """
    try:
        envelope = (folder / MANIFEST_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise BundleFormatError(f"bundle has no {MANIFEST_FILE}") from exc
    signed = verify_document(envelope, trusted) if trusted is not None else _unsigned(envelope)
    try:
        manifest = msgspec.convert(signed, Manifest)
    except msgspec.ValidationError as exc:
        raise BundleFormatError(f"manifest is malformed: {exc}") from exc
    if manifest.format != BUNDLE_FORMAT:
        raise BundleFormatError(f"unsupported bundle format {manifest.format!r}")
    if ONNX_FILE not in manifest.files:
        raise BundleFormatError(f"manifest does not list {ONNX_FILE}")
    present = {p.name for p in folder.iterdir()} - {MANIFEST_FILE}
    extra = present - set(manifest.files)
    if extra:
        raise IntegrityError(f"bundle holds files the manifest does not list: {sorted(extra)}")
    for name, entry in manifest.files.items():
        path = folder / name
        if not _is_safe_name(name) or not path.is_file() or path.is_symlink():
            raise BundleFormatError(f"bundle file {name!r} is missing or not a plain file")
        if not check_hashes:
            length = path.stat().st_size
            if length != entry.length:
                raise IntegrityError(
                    f"{name}: length {length} differs from manifest's {entry.length}"
                )
            continue
        digest, length = sha256_file(path)
        if length != entry.length:
            raise IntegrityError(f"{name}: length {length} differs from manifest's {entry.length}")
        if digest != entry.sha256:
            raise IntegrityError(f"{name}: SHA-256 {digest[:16]}… differs from manifest's")
    return manifest


def _unsigned(envelope: bytes) -> dict[str, Any]:
    try:
        signed = json.loads(envelope)["signed"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleFormatError(f"manifest has no 'signed' object: {exc}") from exc
    if not isinstance(signed, dict):
        raise BundleFormatError("manifest has no 'signed' object")
    return signed


def load_test_vectors(folder: Path, manifest: Manifest) -> list[TestVector]:
    try:
        return msgspec.json.decode(
            (folder / manifest.test_vectors).read_bytes(), type=list[TestVector]
        )
    except (FileNotFoundError, msgspec.DecodeError) as exc:
        raise BundleFormatError(f"test vectors unreadable: {exc}") from exc


def check_test_vectors(folder: Path, manifest: Manifest, infer: InferFn) -> int:
    """Run every test vector through ``infer``; return how many passed or raise."""
    return check_vectors(load_test_vectors(folder, manifest), infer, manifest.tolerance)


def check_vectors(vectors: list[TestVector], infer: InferFn, tol: Tolerance) -> int:
    """Run ``vectors`` through ``infer``; return how many passed or raise
    :class:`TestVectorError` naming the first output that differs beyond ``tol``."""
    if not vectors:
        raise TestVectorError("bundle has no test vectors")
    for index, case in enumerate(vectors):
        got = infer({name: from_wire(t) for name, t in case.inputs.items()})
        for name, wire in case.outputs.items():
            expected = from_wire(wire)
            actual = got.get(name)
            if actual is None or actual.shape != expected.shape:
                raise TestVectorError(
                    f"test vector {index}: output {name!r} has shape "
                    f"{None if actual is None else list(actual.shape)}, "
                    f"expected {list(expected.shape)}"
                )
            difference = _difference(actual, expected, tol.atol, tol.rtol)
            if difference is not None:
                raise TestVectorError(
                    f"test vector {index}: output {name!r} {difference} "
                    f"(tolerance atol={tol.atol}, rtol={tol.rtol})"
                )
    return len(vectors)


def _difference(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> str | None:
    """How ``actual`` differs from ``expected`` beyond the tolerance, or ``None``.

    NaN-aware: a NaN where a NaN is expected matches (a model may answer NaN for some
    inputs, on every runtime alike); a NaN anywhere else is a difference.
    """
    if actual.dtype.kind not in "fc" and expected.dtype.kind not in "fc":
        if np.array_equal(actual, expected):
            return None
        return f"differs in {int(np.sum(actual != expected))} of {expected.size} values"
    got, want = actual.astype(np.float64), expected.astype(np.float64)
    if np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True):
        return None
    misplaced = int(np.sum(np.isnan(got) != np.isnan(want)))
    if misplaced:
        return f"has NaN in {misplaced} place(s) where the other does not"
    worst = float(np.nanmax(np.abs(got - want)))
    return f"differs by up to {worst:.3g}"


def read_manifest_unverified(folder: Path) -> dict[str, Any]:
    """The ``signed`` part without checking it: for display only, never for trust."""
    envelope = json.loads((folder / MANIFEST_FILE).read_bytes())
    signed: dict[str, Any] = envelope["signed"]
    return signed


def pack(folder: Path, out: Path) -> None:
    """Write the bundle folder as an uncompressed tar of plain files."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.iterdir()):
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)


def unpack(archive: Path | IO[bytes], dest: Path, *, max_bytes: int) -> None:
    """Extract a bundle tar (a file, or a stream read once) into the empty folder ``dest``,
    refusing anything unsafe."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    try:
        with (
            tarfile.open(archive, "r:")
            if isinstance(archive, Path)
            else tarfile.open(fileobj=archive, mode="r|")
        ) as tar:
            for member in tar:
                if not member.isreg() or not _is_safe_name(member.name):
                    raise BundleFormatError(
                        f"bundle entry {member.name!r} is not a plain top-level file"
                    )
                total += member.size
                if total > max_bytes:
                    raise BundleFormatError(f"bundle is larger than the {max_bytes} byte limit")
                source = tar.extractfile(member)
                if source is None:
                    raise BundleFormatError(f"bundle entry {member.name!r} is unreadable")
                with source, (dest / member.name).open("xb") as target:
                    while chunk := source.read(1 << 20):
                        target.write(chunk)
    except (tarfile.TarError, FileExistsError, EOFError) as exc:
        raise BundleFormatError(f"bundle archive is unreadable: {exc}") from exc


def _is_safe_name(name: str) -> bool:
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and name not in (".", "..")
        and not name.startswith(".")
    )
