"""What ``appliance model import`` sends for a model file or directory.

The hub converts what it can read without running code from the file (ONNX, skops,
TorchScript, torch.export, MLflow's onnx and skops flavours). Pickles, and MLflow
directories whose flavour is one, are converted to ONNX here, on the uploader's own
machine, where the file is its owner's to trust; the hub then sees ONNX only.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from hub.registry.formats import mlflow
from hub.registry.formats.convert import to_onnx
from hub.registry.formats.detect import ModelFormat, detect
from hub.registry.samples import read_arrays


@dataclass(frozen=True)
class Upload:
    path: Path
    """The file to send, streamed: the model, its folder zipped, or its conversion."""
    format: ModelFormat
    converted_here: bool


def for_upload(path: Path, sample: bytes | None, work: Path) -> Upload:
    """What to upload for the model at ``path``: a file, or a folder (an MLflow model, or
    an ONNX model with its external-data weights), zipped into ``work``."""
    if path.is_dir():
        path = Path(shutil.make_archive(str(work / "model"), "zip", path.parent, path.name))
    fmt = detect(path)
    if fmt is ModelFormat.PICKLE or (fmt is ModelFormat.MLFLOW and not _hub_converts(path, work)):
        out = work / "converted.onnx"
        to_onnx(path, out, read_arrays(sample) if sample else None, trust_pickles=True)
        return Upload(out, fmt, converted_here=True)
    return Upload(path, fmt, converted_here=False)


def _hub_converts(archive: Path, work: Path) -> bool:
    """Whether the hub reads this MLflow model itself (no pickle in the way)."""
    return not mlflow.read_archive(archive, work / "mlmodel").pickled
