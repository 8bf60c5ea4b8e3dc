"""A minimal MLServer runtime for one ONNX file (MLServer ships no ONNX runtime).

Runs inside MLServer's environment (bench/servers.py), not the project's. It loads the
file named by ``parameters.uri`` in model-settings.json with the agent's ONNX
Runtime options (1 intra-op thread, 1 inter-op thread, ORT_ENABLE_ALL) and
answers v2 inference with MLServer's own NumPy codec, as a user would write it.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxModel(MLModel):  # type: ignore[misc]  # mlserver is untyped here
    async def load(self) -> bool:
        uri = self.settings.parameters.uri if self.settings.parameters else None
        if not uri:
            raise ValueError("model-settings.json needs parameters.uri (the ONNX file)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            uri, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._outputs = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed: dict[str, np.ndarray] = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}
        results = self._session.run(self._outputs, feed)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, array)
                for name, array in zip(self._outputs, results, strict=True)
            ],
        )
