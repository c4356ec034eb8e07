"""Feedback bodies, ``{"labels": [{"id": request_id, "label": value}, …]}``: the request ids
and the labels as two lists, or a 400 naming what is wrong. Used by the front for small bodies
and by the feedback helper process (``gateway.feedback_process``) for large ones, so it
imports nothing of the server."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.codecs.tabular import decode_json_object
from gateway.errors import BadRequest

if TYPE_CHECKING:
    from collections.abc import Iterator

FORM = '{"labels": [{"id": request_id, "label": value}, …]}'


class _Label(msgspec.Struct, gc=False):  # never tracked: a million of them cost no collection
    id: str | int
    label: str | int | float | bool


class _Body(msgspec.Struct):
    labels: list[msgspec.Raw]  # each label's JSON text, decoded in slices


_typed = msgspec.json.Decoder(_Body)
_slice = msgspec.json.Decoder(list[_Label])
# The decoder holds the interpreter for a call's whole length, so a body decoded on a thread
# is decoded in short steps (predictions run between them): the label array is cut into
# pieces of about this many bytes (at "}," between two labels; ~0.2 ms of decoding each)
DECODE_PIECE_BYTES = 16 * 1024
_HEAD = re.compile(rb'\s*\{\s*"labels"\s*:\s*\[')


def parse_feedback(
    body: bytes, max_labels: int, *, piece_bytes: int = DECODE_PIECE_BYTES
) -> tuple[list[str], list[Any]]:
    """The request ids and the labels of a feedback body, as two lists (strings and scalars:
    nothing per label for the garbage collector to walk); a 400 naming what is wrong.

    >>> parse_feedback(b'{"labels": [{"id": "a", "label": 1}, {"id": 7, "label": "x"}]}', 10)
    (['a', '7'], [1, 'x'])
    >>> parse_feedback(b'{"labels": [{"id": "a", "label": [1]}]}', 10)
    Traceback (most recent call last):
    gateway.errors.BadRequest: feedback labels[0].label: expected a scalar, got [1]
    >>> parse_feedback(b'{"labels": [{"id": "a", "label": 1}, {"id": "b", "label": 2}]}', 1)
    Traceback (most recent call last):
    gateway.errors.BadRequest: feedback: expected at most max_feedback_labels=1 labels, got 2
    """
    ids: list[str] = []
    labels: list[Any] = []
    try:  # the fast path: typed decodes (msgspec), a piece of the label array at a time
        for piece in _pieces(body, piece_bytes):
            for x in _slice.decode(piece):
                ids.append(str(x.id))
                labels.append(x.label)
    except (msgspec.DecodeError, RecursionError):
        pairs = _parse_slowly(body)  # the same rules, with a message naming the culprit
        ids = [i for i, _ in pairs]
        labels = [label for _, label in pairs]
    _check_count(len(ids), max_labels)
    return ids, labels


def _pieces(body: bytes, piece_bytes: int) -> Iterator[bytes]:
    """The label array of ``{"labels": [...]}`` as JSON arrays of about ``piece_bytes``
    each, cut between two labels, without scanning the whole body in
    one call. A cut that falls inside a string leaves a piece that does not decode (an
    unterminated string), so a piece that decodes is a run of whole labels. A body of another
    shape comes whole (its decode then says what is wrong).

    >>> body = b'{"labels": [{"id": 1, "label": 2}, {"id": 3, "label": 4}]}'
    >>> list(_pieces(body, 1000))
    [b'[{"id": 1, "label": 2}, {"id": 3, "label": 4}]']
    >>> list(_pieces(body, 1))
    [b'[{"id": 1, "label": 2}]', b'[ {"id": 3, "label": 4}]']
    """
    head = _HEAD.match(body)
    end = len(body) - 1
    while end >= 0 and body[end] in b" \t\r\n":
        end -= 1
    if head is None or end < 1 or body[end] != ord("}"):
        yield b"[" + b",".join(_typed.decode(body).labels) + b"]"
        return
    end -= 1
    while end >= 0 and body[end] in b" \t\r\n":
        end -= 1
    if body[end] != ord("]") or end < head.end() - 1:
        yield b"[" + b",".join(_typed.decode(body).labels) + b"]"
        return
    start = head.end()
    while start < end:
        cut = body.find(b"},", start + piece_bytes, end)
        stop = end if cut < 0 else cut + 1
        yield b"[" + body[start:stop] + b"]"
        start = stop + 1


def _check_count(count: int, max_labels: int) -> None:
    if not count:
        raise BadRequest(f"feedback: expected {FORM}, got no labels")
    if count > max_labels:
        raise BadRequest(
            f"feedback: expected at most max_feedback_labels={max_labels} labels, got {count}"
        )


def _parse_slowly(body: bytes) -> list[tuple[str, Any]]:
    data = decode_json_object(body, "feedback")
    labels = data.get("labels")
    if not isinstance(labels, list) or not labels:
        raise BadRequest(f"feedback: expected {FORM}, got keys {sorted(data)}")
    out = []
    for i, item in enumerate(labels):
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            raise BadRequest(f"feedback labels[{i}]: expected an object with 'id' and 'label'")
        request_id, label = item["id"], item["label"]
        if not isinstance(request_id, str | int) or isinstance(request_id, bool):
            raise BadRequest(f"feedback labels[{i}].id: expected a string, got {request_id!r}")
        if label is None or isinstance(label, list | dict):
            raise BadRequest(f"feedback labels[{i}].label: expected a scalar, got {label!r}")
        out.append((str(request_id), label))
    return out
