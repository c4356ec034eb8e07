"""OIP over gRPC (``inference.GRPCInferenceService``, as KServe, Triton and MLServer serve it).

``GrpcServer(gateway, host=..., port=...)`` is added to a ``Gateway`` with ``add_service``;
``oip_pb2`` holds the messages generated from ``proto/oip.proto`` (``make proto``).
"""

from gateway.grpc.server import GrpcError, GrpcServer

__all__ = ["GrpcError", "GrpcServer"]
