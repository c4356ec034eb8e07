"""``AnsweredIds``: the request ids a gateway worker answered recently, per model, so that
feedback can say how many of its labels matched a logged prediction.

Bounded: the newest ``capacity`` answered requests of a model are remembered (older ones are
forgotten first), so the answer is exact for recent predictions of this worker process and
approximate beyond: a label for a request answered longer ago, or by another worker of
``mlgate serve --workers N``, counts as unmatched here (the monitor still joins it to the
logged prediction; it prunes labels that match nothing after ``label_horizon_s``).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

SEPARATOR = "\x00"  # between the ids of a snapshot (an id holding it is sent as a list)


class AnsweredIds:
    """Recently answered request ids of one model, with each request's row count.

    A request of ``n > 1`` rows is logged as ``<id>/0`` … ``<id>/<n-1>`` (one label per row),
    a one-row request as ``<id>``; ``matches`` follows the same naming.

    >>> ids = AnsweredIds(capacity=2)
    >>> ids.add("a", 1); ids.add("b", 3)
    >>> ids.matches("a"), ids.matches("b"), ids.matches("b/2"), ids.matches("b/3")
    (True, False, True, False)
    >>> ids.add("c", 1)  # "a" is forgotten
    >>> ids.matches("a"), ids.matches("c"), len(ids)
    (False, True, 2)
    """

    __slots__ = ("_rows", "capacity")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, request_id: str, rows: int) -> None:
        """Remember an answered request (on the event loop; ``matches`` may run on a thread:
        each dict operation is atomic under the GIL)."""
        if self.capacity <= 0:
            return
        self._rows[request_id] = rows
        if len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    def snapshot(self) -> tuple[str | list[str], bytes]:
        """The remembered ids and their row counts, to send to another process: the ids
        joined by ``SEPARATOR`` (one C call each, so the event loop is held for milliseconds,
        not for a Python loop over 200,000 ids), or as a list when one of them holds it.

        >>> ids = AnsweredIds(capacity=5); ids.add("a", 1); ids.add("b", 3)
        >>> copy = AnsweredIds.from_snapshot(*ids.snapshot())
        >>> copy.matches("a"), copy.matches("b/2"), copy.matches("b/3"), len(copy)
        (True, True, False, 2)
        >>> ids.add("x" + SEPARATOR + "y", 1)
        >>> AnsweredIds.from_snapshot(*ids.snapshot()).matches("x" + SEPARATOR + "y")
        True
        """
        keys = list(self._rows)
        joined = SEPARATOR.join(keys)
        rows = array("q", self._rows.values()).tobytes()
        if joined.count(SEPARATOR) != max(len(keys) - 1, 0):
            return keys, rows
        return joined, rows

    @classmethod
    def from_snapshot(cls, keys: str | list[str], rows: bytes) -> AnsweredIds:
        """The ids of ``snapshot``, in a new (unbounded) ``AnsweredIds``."""
        counts = array("q")
        counts.frombytes(rows)
        names = keys if isinstance(keys, list) else (keys.split(SEPARATOR) if counts else [])
        if len(names) != len(counts):
            raise ValueError(f"snapshot: {len(names)} ids but {len(counts)} row counts")
        copy = cls(capacity=len(names))
        copy._rows = OrderedDict(zip(names, counts, strict=True))
        return copy

    def matches(self, label_id: str) -> bool:
        """Whether ``label_id`` names a logged row of a remembered request."""
        rows = self._rows.get(label_id)
        if rows is not None:
            return rows == 1
        base, sep, index = label_id.rpartition("/")
        if not sep or not index.isdigit():
            return False
        rows = self._rows.get(base)
        return rows is not None and rows > 1 and int(index) < rows
