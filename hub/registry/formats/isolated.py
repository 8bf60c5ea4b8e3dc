"""Converting an upload to ONNX on the hub, in a child process (see the package's notes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from appliance.errors import UnprocessableInputError
from hub.registry.formats import mlflow
from hub.registry.formats.archive import extract, normalised, onnx_with_external_data
from hub.registry.formats.detect import ModelFormat, detect

CONVERT_TIMEOUT_S = 900.0
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "PYTHONPATH", "OMP_NUM_THREADS")
"""All the child sees of the hub's environment: no database URL, no key passphrase."""


def as_onnx(upload: Path, sample: bytes | None, work: Path) -> tuple[Path, ModelFormat]:
    """The uploaded model as an ONNX file in ``work``: ONNX as it is, an archive of ONNX
    with external data normalised (:mod:`hub.registry.formats.archive`, no code runs),
    other formats converted in a child process."""
    fmt = detect(upload)
    if fmt is ModelFormat.ONNX:
        return upload, fmt
    if fmt is ModelFormat.ONNX_ARCHIVE:
        return onnx_with_external_data(upload, work), fmt
    if (
        fmt is ModelFormat.MLFLOW
        and "onnx" in mlflow.read_archive(upload, work / "mlmodel").flavours
    ):
        # ONNX already, weights beside it or not: no code runs, and no converter process
        extract(upload, work / "unpacked")
        model = mlflow.read(work / "unpacked")
        return normalised(model.file("onnx", "data"), work), fmt
    out = work / "converted.onnx"
    command = [sys.executable, "-m", "hub.registry.formats.child", str(upload), str(out)]
    if sample is not None:
        (work / "sample").write_bytes(sample)
        command.append(str(work / "sample"))
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=CONVERT_TIMEOUT_S, env=env, cwd=work, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise UnprocessableInputError(
            f"model: converting the {fmt.value} model took longer than {CONVERT_TIMEOUT_S:.0f} s"
        ) from exc
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines() or [""]
    if done.returncode == 0 and out.exists():
        return out, ModelFormat(lines[-1])
    try:
        refusal = json.loads(lines[-1])
    except ValueError:
        refusal = None
    if not isinstance(refusal, dict):
        raise UnprocessableInputError(
            f"model: converting the {fmt.value} model stopped the converter "
            f"(exit status {done.returncode})"
        )
    raise UnprocessableInputError(
        str(refusal.get("error")).replace(str(work), "the upload"), hint=refusal.get("hint")
    )
