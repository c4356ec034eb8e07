"""The gRPC front of one gateway worker: a ``grpc.aio`` server on the worker's event loop.

It is a ``Gateway`` service (``Gateway.add_service``): started after the models begin loading,
closed before the gateway drains, so gRPC and HTTP requests share one set of batchers.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import grpc

from gateway.grpc.service import InferenceService

if TYPE_CHECKING:
    from gateway.service import Gateway

log = logging.getLogger("gateway.grpc")


class GrpcError(RuntimeError):
    """The gRPC server could not start (its port is taken, the address is invalid)."""


class GrpcServer:
    """OIP over gRPC on ``host:port`` for ``gw``.

    Parameters
    ----------
    gw
        The worker's gateway; the server runs on the loop that calls ``start``.
    host, port
        Where to listen; port 0 picks a free port (read it from ``port`` after ``start``).
    reuse_port
        Let several worker processes listen on the same port (``SO_REUSEPORT``); off for a
        single worker, so that a port taken by another server is an error, not a shared port.
    """

    def __init__(self, gw: Gateway, *, host: str, port: int, reuse_port: bool = False) -> None:
        self.gw = gw
        self.host = host
        self.port = port
        self.reuse_port = reuse_port
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    async def start(self) -> None:
        limit = self.gw.settings.max_body_bytes
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", int(self.reuse_port)),
            ]
        )
        server.add_generic_rpc_handlers((InferenceService(self.gw).handler(),))
        try:
            bound = server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise GrpcError(f"gRPC: cannot listen on {self.address}: {exc}") from None
        if bound == 0:
            raise GrpcError(f"gRPC: cannot listen on {self.address} (is the port taken?)")
        self.port = bound
        await server.start()
        self._server = server
        log.info("OIP over gRPC on %s", self.address)

    async def aclose(self) -> None:
        """Stop accepting; in-flight RPCs get up to ``drain_timeout_s`` to finish."""
        if self._server is not None:
            await self._server.stop(self.gw.settings.drain_timeout_s)
            self._server = None
