"""``POST /v2/models/{model}/feedback``: ground truth by request id, answered by the front.

The body goes through the predict body rules (``gateway.http.body``: ``max_body_bytes``,
compression, and decoding on a thread from ``decode_off_loop_bytes``); a body of
``feedback_process_bytes`` or more (inflated) is parsed and written by the worker's feedback
helper process (``gateway.feedback_process``), so that a large label batch neither blows up
memory nor takes the interpreter from predictions; at most ``max_feedback_labels`` labels per
request. The answer counts the labels received, accepted
into the log, and matched / unmatched to a prediction this worker answered recently
(``gateway.answered``: exact for recent ones, approximate beyond ``feedback_match_ids``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from functools import partial
from typing import TYPE_CHECKING

import msgspec

from gateway.codecs.feedback import parse_feedback
from gateway.http import body as body_rules
from gateway.http.auth import check_predict_token
from gateway.http.predict import Reply
from gateway.http.request import JSON, PredictRequest

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Awaitable, Callable

    from gateway.service import FeedbackResult, Gateway

_encoder = msgspec.json.Encoder()


class FeedbackOperation:
    """The feedback endpoint of one model, run by the front like a predict ``Operation``."""

    __slots__ = ("model",)
    kind = "feedback"

    def __init__(self, model: str) -> None:
        self.model = model

    async def __call__(
        self, gw: Gateway, request: PredictRequest, chunks: AsyncIterable[bytes]
    ) -> Reply:
        settings = gw.settings
        limit = settings.max_body_bytes
        body_rules.check_length(request, limit)
        check_predict_token(request.header("authorization"), settings.predict_token)
        gw.models.get(self.model)  # an unknown model is a 404 whatever the body holds
        if gw.feedback_process is not None:
            gw.feedback_process.warm()
        length = request.header("content-length")
        if request.content_encoding is None and length is not None and length.isdigit():
            if gw.uses_feedback_process(int(length)):  # straight to the helper's spool file
                spool_chunks = partial(body_rules.spool, chunks, limit)
                return self._reply(await self._in_process(gw, spool_chunks))
        body = await body_rules.read(chunks, limit)
        max_labels = settings.max_feedback_labels

        def record(data: bytes) -> FeedbackResult | bytes:
            if gw.uses_feedback_process(len(data)):  # inflated this large: for the helper
                return data
            return gw.feedback(self.model, *parse_feedback(data, max_labels))

        result = await body_rules.decode(
            request, body, record, limit=limit, off_loop_bytes=settings.decode_off_loop_bytes
        )
        if isinstance(result, bytes):
            whole = result

            async def write_body(fd: int) -> None:
                await asyncio.to_thread(body_rules.write_all, fd, whole)

            result = await self._in_process(gw, write_body)
        return self._reply(result)

    async def _in_process(
        self, gw: Gateway, write: Callable[[int], Awaitable[object]]
    ) -> FeedbackResult:
        """The body written to a spool file by ``write(fd)``, handed to the helper process."""
        helper = gw.feedback_process
        assert helper is not None
        fd, path = helper.new_spool()
        try:
            try:
                await write(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return await gw.feedback_in_process(self.model, path)  # removes the file

    @staticmethod
    def _reply(result: FeedbackResult) -> Reply:
        return Reply(_encoder.encode(result.as_dict()), [("content-type", JSON)])
