"""gRPC stubs of the Open Inference Protocol (``inference.GRPCInferenceService``).

``open_inference_grpc.proto`` is the protocol's own definition, from
github.com/kserve/open-inference-protocol (``specification/protocol``, Apache-2.0,
commit d49cc23); the ``_pb2`` modules are generated from it by ``make grpc-stubs``.
"""
