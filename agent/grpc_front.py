"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``).

It only translates: a ``ModelInferRequest`` becomes the same
:class:`~agent.v2_codec.InferRequest` the HTTP front decodes (``raw_input_contents`` as
binary tensor data, or the typed ``contents``), runs on the one inference core
(:class:`agent.inference.InferenceCore`), and the answer goes back in
``raw_output_contents``, as Triton answers. The same credentials as HTTP are checked:
``authorization`` metadata (``Bearer ak_…``) or the client certificate verified in the TLS
handshake; live and ready need none, as on HTTP.

The server runs beside uvicorn in the agent's process on its own port
(``APPLIANCE_GRPC_PORT``), with the agent's HTTPS certificate. gRPC's server cannot ask
for a client certificate optionally, as HTTPS does: client certificates count on gRPC when
``APPLIANCE_GRPC_CLIENT_CERTS`` makes every client present one (mutual TLS). Its thread
pool runs the work off uvicorn's event loop; ``maximum_concurrent_rpcs`` bounds what it
admits, and one more call is answered ``RESOURCE_EXHAUSTED`` at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np

from agent import v2_codec
from agent.access import DataPlaneAccess
from agent.extensions import EXTENSIONS
from agent.grpc_v2 import open_inference_grpc_pb2 as pb
from agent.grpc_v2 import open_inference_grpc_pb2_grpc as pb_grpc
from agent.inference import InferenceCore
from agent.repository import ModelRepository
from appliance import __version__
from appliance.bundle.tensors import v2_datatype
from appliance.errors import (
    ApplianceError,
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    TimedOutError,
)
from appliance.ids import parse_id
from appliance.security.tls import certificate_sha256

log = logging.getLogger(__name__)

T = TypeVar("T")

_CODES: tuple[tuple[type[ApplianceError], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (RateLimitedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (TimedOutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)

_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The typed ``contents`` field each datatype travels in (FP16 only as raw bytes)."""


def _code(exc: ApplianceError) -> grpc.StatusCode:
    for family, code in _CODES:
        if isinstance(exc, family):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


def _parameter(value: Any) -> Any:
    choice = value.WhichOneof("parameter_choice")
    return getattr(value, choice) if choice else None


def _to_parameter(value: Any) -> Any:
    if isinstance(value, bool):
        return pb.InferParameter(bool_param=value)
    if isinstance(value, int):
        return pb.InferParameter(int64_param=value)
    if isinstance(value, float):
        return pb.InferParameter(double_param=value)
    return pb.InferParameter(string_param=str(value))


def to_request(message: Any) -> v2_codec.InferRequest:
    """A ``ModelInferRequest`` as the HTTP front's request: raw contents become binary
    tensor data (so they are checked the same way), typed contents JSON-like numbers."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInputError(
            f"raw_input_contents: {len(raw)} given for {len(message.inputs)} inputs"
        )
    inputs = []
    for index, tensor in enumerate(message.inputs):
        data: Any
        if raw:
            data = v2_codec.Raw(raw[index])
        else:
            field = _CONTENTS.get(tensor.datatype)
            if field is None:
                raise InvalidInputError(
                    f"inputs[{index}].contents: {tensor.datatype!r} travels in "
                    "raw_input_contents only"
                )
            data = list(getattr(tensor.contents, field))
        inputs.append(
            v2_codec.InferInput(
                name=tensor.name,
                shape=list(tensor.shape),
                datatype=tensor.datatype,
                data=data,
                parameters={k: _parameter(v) for k, v in tensor.parameters.items()} or None,
            )
        )
    request = v2_codec.InferRequest(
        inputs=inputs,
        id=message.id or None,
        parameters={k: _parameter(v) for k, v in message.parameters.items()} or None,
        outputs=[v2_codec.RequestedOutput(name=o.name) for o in message.outputs] or None,
    )
    v2_codec.check_request_id(request)
    return request


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self,
        repository: ModelRepository,
        core: InferenceCore,
        access: DataPlaneAccess,
        platforms: dict[str, str],
    ) -> None:
        self.repository = repository
        self.core = core
        self.access = access
        self.platforms = platforms

    # -- plumbing ------------------------------------------------------------------------

    def _answer(self, context: Any, model: str | None, work: Callable[[], T]) -> T:
        """Check the caller's credential for ``model`` (any, for None), then do ``work``;
        our errors become status codes, anything else INTERNAL without details."""
        try:
            metadata = dict(context.invocation_metadata())
            self.access.check(metadata.get("authorization"), model, _peer_certificate(context))
            return work()
        except ApplianceError as exc:
            context.abort(_code(exc), str(exc))
        except Exception:
            log.exception("gRPC call failed")
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the agent's log")
        raise AssertionError("context.abort raises")  # pragma: no cover

    # -- the service ---------------------------------------------------------------------

    def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request: Any, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=bool(self.repository.all()))

    def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(
            name="appliance-agent", version=__version__, extensions=EXTENSIONS
        )

    def ModelReady(self, request: Any, context: Any) -> Any:
        def ready() -> Any:
            try:
                self.repository.get(request.name, _version(request.version))
            except NotFoundError:
                return pb.ModelReadyResponse(ready=False)
            return pb.ModelReadyResponse(ready=True)

        return self._answer(context, request.name, ready)

    def ModelMetadata(self, request: Any, context: Any) -> Any:
        def metadata() -> Any:
            model = self.repository.get(request.name, _version(request.version))
            described = v2_codec.model_metadata(model.manifest, self.platforms[model.runtime.kind])
            return pb.ModelMetadataResponse(
                name=described["name"],
                versions=described["versions"],
                platform=described["platform"],
                inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in described["inputs"]],
                outputs=[
                    pb.ModelMetadataResponse.TensorMetadata(**t) for t in described["outputs"]
                ],
            )

        return self._answer(context, request.name, metadata)

    def ModelInfer(self, request: Any, context: Any) -> Any:
        def infer() -> Any:
            subject = dict(context.invocation_metadata()).get("x-subject-id")
            done = self.core.run(
                request.model_name,
                _version(request.model_version),
                lambda: to_request(request),
                subject,
            )
            answer = pb.ModelInferResponse(
                model_name=done.model.name,
                model_version=str(done.model.version),
                id=done.request_id or "",
            )
            for key, value in (done.parameters or {}).items():
                answer.parameters[key].CopyFrom(_to_parameter(value))
            for name in done.names:
                array = np.asarray(done.results[name])
                answer.outputs.add(name=name, datatype=v2_datatype(array), shape=array.shape)
                answer.raw_output_contents.append(v2_codec.raw_bytes(array))
            return answer

        return self._answer(context, request.model_name, infer)


def _version(text: str) -> int | None:
    if not text:
        return None
    version = parse_id(text)
    if version is None:
        raise NotFoundError(f"no model version {text[:32]!r}")
    return version


def _peer_certificate(context: Any) -> str | None:
    """SHA-256 of the client certificate verified in the TLS handshake, if one was."""
    pem = context.auth_context().get("x509_pem_cert")
    return certificate_sha256(pem[0].decode()) if pem else None


def serve_grpc(
    servicer: InferenceServicer,
    host: str,
    port: int,
    *,
    workers: int,
    admitted: int,
    max_message_bytes: int,
    tls: tuple[Path, Path, Path | None] | None,
) -> Any:
    """Start the gRPC server (``tls``: certificate, key and, for mutual TLS, the CA whose
    client certificates every client must present); returns it, for ``stop``."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=admitted,
        options=[  # the same body limit as HTTP (APPLIANCE_MAX_REQUEST_MB)
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    address = f"{host}:{port}"
    if tls is None:
        server.add_insecure_port(address)
    else:
        cert, key, client_ca = tls
        credentials = grpc.ssl_server_credentials(
            [(key.read_bytes(), cert.read_bytes())],
            root_certificates=client_ca.read_bytes() if client_ca else None,
            require_client_auth=client_ca is not None,
        )
        server.add_secure_port(address, credentials)
    server.start()
    log.info("gRPC (inference.GRPCInferenceService) on %s%s", address, "" if tls else " (plain)")
    return server
