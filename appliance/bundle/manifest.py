"""The model bundle's manifest: what a bundle holds and promises.

A bundle is a flat folder (or a tar of one) with:

* ``manifest.json`` — a signed envelope (see :mod:`appliance.security.signing`) whose
  ``signed`` part is a :class:`Manifest`;
* ``model.onnx`` — always; ``model.xml``/``model.bin`` — OpenVINO IR when the
  conversion worked;
* ``reference.npy`` — a sample of training inputs for drift detection;
* ``test_vectors.json`` — inputs with the outputs expected within a tolerance.

Every file except the manifest is listed in ``files`` with its SHA-256 and
length; an agent refuses a bundle with a missing, extra or altered file.
"""

from __future__ import annotations

from typing import Any

import msgspec

BUNDLE_FORMAT = "appliance.bundle/1"
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
ONNX_DATA_FILE = "model.onnx.data"
"""The weights of a model stored as ONNX external data (models past protobuf's 2 GB)."""
IR_XML_FILE = "model.xml"
IR_BIN_FILE = "model.bin"
REFERENCE_FILE = "reference.npy"
TEST_VECTORS_FILE = "test_vectors.json"


class TensorSpec(msgspec.Struct, frozen=True):
    name: str
    datatype: str
    shape: list[int]
    """-1 marks a dynamic dimension (usually the batch)."""


class FileEntry(msgspec.Struct, frozen=True):
    sha256: str
    length: int


class Lineage(msgspec.Struct, frozen=True, kw_only=True):
    trainer: str | None = None
    dataset: str | None = None
    dataset_sha256: str | None = None
    code_version: str | None = None
    hyperparameters: dict[str, Any] = {}
    source: str | None = None
    """Where the model came from when not trained here (e.g. an uploaded file's name)."""
    training_job: int | None = None
    feature_views: list[str] = []
    """``view:version`` of every feature view the model was trained on."""
    label_view: str | None = None
    snapshots: list[str] = []
    """SHA-256 of every feature snapshot (Parquet file) the training set was read from."""
    classes: list[str] = []
    """Classification: the label value of each output column, in order."""
    worker: str | None = None
    device: str | None = None
    """``cpu`` or the GPU model(s) it trained on."""


class Tolerance(msgspec.Struct, frozen=True):
    """How close a runtime's answer must be to a test vector's: ``|got - want| <= atol +
    rtol * |want|`` (NaN only where NaN is expected). Set per model at import."""

    atol: float = 1e-5
    rtol: float = 1e-4


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format: str = BUNDLE_FORMAT
    name: str
    version: int
    created_at: str
    """UTC, ISO 8601 with a ``Z``."""
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    files: dict[str, FileEntry]
    lineage: Lineage
    metrics: dict[str, float] = {}
    reference_sample: str | None = REFERENCE_FILE
    test_vectors: str = TEST_VECTORS_FILE
    tolerance: Tolerance = Tolerance()
    runtime_notes: dict[str, str] = {}
    """Runtimes the bundle does not offer, and why (``openvino``: could not convert the
    model, or its answers differ from ONNX Runtime's beyond the tolerance)."""

    @property
    def has_openvino_ir(self) -> bool:
        return IR_XML_FILE in self.files and IR_BIN_FILE in self.files


class TestVector(msgspec.Struct, frozen=True):
    """One case: v2 wire tensors in, v2 wire tensors expected out."""

    __test__ = False

    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
