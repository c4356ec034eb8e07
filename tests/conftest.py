"""Shared fixtures: registries on a local directory and on a real S3 endpoint (moto server).

``s3_endpoint`` starts moto's S3 server once per test session (per xdist worker) on a free
loopback port and points botocore/s3fs at it through the environment, with fake credentials,
so subprocesses started by a test reach it too. ``make_bucket()`` creates a fresh bucket.
Use ``registry_url`` to run a test on both backends.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _linearizable_moto_server(port: int = 0) -> Any:
    """moto's S3 server with request handling serialized.

    moto checks ``If-Match``/``If-None-Match`` and then stores the object without a lock, so
    under its threaded server two conditional PUTs can both pass the check (seen here: one
    canary increment in 40 lost). Real S3 is linearizable per key; holding one lock around
    each request (connections stay concurrent) gives the tests that same guarantee.
    """
    import threading

    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
    from werkzeug.serving import make_server

    class LinearizableMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            lock = threading.Lock()

            def serialized(environ: Any, start_response: Any) -> list[bytes]:
                with lock:
                    return list(app(environ, start_response))

            self._server = make_server(
                self._ip_address, self._port, serialized, True, request_handler=MotoRequestHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return LinearizableMotoServer(ip_address="127.0.0.1", port=port, verbose=False)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server on 127.0.0.1; the env points botocore and mlgate at it."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    saved = {k: os.environ.get(k) for k in [*S3_ENV, "AWS_ENDPOINT_URL", "MLGATE_S3_ENDPOINT_URL"]}
    os.environ.pop("AWS_PROFILE", None)
    server = _linearizable_moto_server()
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint, MLGATE_S3_ENDPOINT_URL=endpoint)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def make_bucket(s3_endpoint: str) -> Callable[[], str]:
    """Factory: creates a fresh, empty bucket on the moto server and returns its name."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")

    def make() -> str:
        name = f"mlgate-{uuid.uuid4().hex[:20]}"
        client.create_bucket(Bucket=name)
        return name

    return make


@pytest.fixture
def local_registry_url(tmp_path: Path) -> str:
    """``file://`` URL of an empty registry directory."""
    return "file://" + str(tmp_path / "registry")


@pytest.fixture
def s3_registry_url(make_bucket: Callable[[], str]) -> str:
    """``s3://`` URL of an empty registry prefix in a fresh bucket."""
    return f"s3://{make_bucket()}/registry"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def registry_url(request: pytest.FixtureRequest) -> str:
    """An empty registry URL on each backend in turn (the contract suite's parameter)."""
    return str(request.getfixturevalue(f"{request.param}_registry_url"))
