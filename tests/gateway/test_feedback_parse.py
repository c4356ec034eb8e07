"""``parse_feedback`` cuts the label array into pieces without one long decode; whatever the
labels hold (``},`` inside strings, unicode, escapes, odd spacing), it reads what ``json``
reads, and refuses what it refuses."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codecs.feedback import parse_feedback
from gateway.errors import BadRequest

ids = st.one_of(st.text(max_size=12), st.integers(-(2**40), 2**40))
values = st.one_of(
    st.text(alphabet=st.sampled_from('},{"\\ ab:[]\n'), max_size=10),
    st.text(max_size=8),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
labels = st.lists(st.tuples(ids, values), min_size=1, max_size=60)
separators = st.sampled_from([(", ", ": "), (",", ":"), (",\n  ", ": ")])


@settings(max_examples=300, deadline=None)
@given(labels=labels, separators=separators, piece_bytes=st.integers(1, 200))
def test_pieces_read_what_json_reads(
    labels: list[tuple[str | int, object]], separators: tuple[str, str], piece_bytes: int
) -> None:
    body = json.dumps(
        {"labels": [{"id": i, "label": v} for i, v in labels]}, separators=separators
    ).encode()
    # small pieces: many cuts, some inside strings
    parsed = parse_feedback(body, 10_000, piece_bytes=piece_bytes)
    assert parsed == ([str(i) for i, _ in labels], [v for _, v in labels])


@pytest.mark.parametrize(
    "body",
    [
        b'{"labels": [{"id": "a", "label": 1}, {"id": "b"}]}',
        b'{"labels": [{"id": "a", "label": 1},]}',
        b'{"labels": [{"id": "a", "label": 1}, {"id": "b", "label": [2]}]}',
        b'{"labels": [{"id": "a", "label": 1}',
    ],
)
def test_a_bad_label_is_a_400_naming_it(body: bytes) -> None:
    with pytest.raises(BadRequest, match=r"feedback"):
        parse_feedback(body, 10)
