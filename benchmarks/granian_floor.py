"""The HTTP server's own cost: granian serving an RSGI app that does no work.

The app reads each request's body (one ``await protocol()``, as mlgate's front does) and
answers a constant OIP response of the size and headers mlgate's answer to the reference
request has; any GET (the ready check) gets ``200``. Served as ``mlgate serve`` serves its
front: RSGI, one worker process, uvloop, HTTP/1 and 2 detection. ``http_bench --targets
granian-floor,mlgate`` then shows, in one run, how much of mlgate's CPU per request is the
server's (parse, the loop's wake-up, a task per request, the write) and how much the gateway's.

    .venv/bin/python -m benchmarks.granian_floor --port 8000
"""

from __future__ import annotations

import argparse
from typing import Any

ANSWER = (
    b'{"model_name":"rf","model_version":"1","id":"00000000000000000000000000000000",'
    b'"parameters":{},"outputs":[{"name":"predict","shape":[1],"datatype":"INT64",'
    b'"data":[1]},{"name":"predict_proba","shape":[1,2],"datatype":"FP64",'
    b'"data":[0.3466666666666667,0.6533333333333333]}]}'
)
HEADERS = [
    ("content-type", "application/json"),
    ("x-model-version", "1"),
    ("x-route", "champion"),
    ("x-request-id", "00000000000000000000000000000000"),
]


class FloorApp:
    """RSGI: read the body, answer the constant."""

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":
            protocol.close()
            return
        if scope.method == "POST":
            await protocol()
            protocol.response_bytes(200, HEADERS, ANSWER)
            return
        protocol.response_bytes(200, [("content-type", "text/plain")], b"ok")


def app_factory() -> FloorApp:
    return FloorApp()


def main() -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    Granian(
        "benchmarks.granian_floor:app_factory",
        factory=True,
        address=a.host,
        port=a.port,
        interface=Interfaces.RSGI,
        workers=1,
        loop=Loops.uvloop,
        websockets=False,
        http=HTTPModes.auto,
        log_level="warning",  # type: ignore[arg-type]
    ).serve()


if __name__ == "__main__":
    main()
