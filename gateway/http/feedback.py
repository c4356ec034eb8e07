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
from typing import TYPE_CHECKING

import msgspec

from gateway.codecs.feedback import parse_feedback
from gateway.http import body as body_rules
from gateway.http.auth import check_predict_token
from gateway.http.predict import Reply
from gateway.http.request import PredictRequest

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

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
        encoding = request.content_encoding
        length = request.header("content-length")
        if encoding is None and length is not None and length.isdigit():
            if gw.uses_feedback_process(int(length)):  # straight to the helper's spool file
                return self._reply(await self._in_process(gw, chunks, None))
        body = await body_rules.read(chunks, limit)
        if encoding is not None:  # on a thread: zlib lets go of the interpreter as it works
            body = await asyncio.to_thread(body_rules.inflate, body, encoding, limit)
        if gw.uses_feedback_process(len(body)):
            return self._reply(await self._in_process(gw, None, body))
        max_labels = settings.max_feedback_labels

        def record(data: bytes) -> FeedbackResult:
            return gw.feedback(self.model, *parse_feedback(data, max_labels))

        if len(body) >= settings.decode_off_loop_bytes:
            result = await asyncio.to_thread(record, body)
        else:
            result = record(body)
        return self._reply(result)

    async def _in_process(
        self, gw: Gateway, chunks: AsyncIterable[bytes] | None, body: bytes | None
    ) -> FeedbackResult:
        helper = gw.feedback_process
        assert helper is not None
        fd, path = helper.new_spool()
        try:
            try:
                if chunks is not None:
                    await body_rules.spool(chunks, gw.settings.max_body_bytes, fd)
                else:
                    assert body is not None
                    await asyncio.to_thread(body_rules.write_all, fd, body)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return await gw.feedback_in_process(self.model, path)  # removes the file

    @staticmethod
    def _reply(result: FeedbackResult) -> Reply:
        return Reply(_encoder.encode(result.as_dict()), headers=[])
