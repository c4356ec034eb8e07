"""What every group of the store's tables shares: the connection, transactions, inserts."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

    import duckdb
    import pyarrow as pa


class Tables:
    """Base of the table groups ``MonitorStore`` is made of (``con`` is the store's)."""

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        raise NotImplementedError

    _depth = 0  # transactions open on this store (an inner one joins the outer one)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN`` … ``COMMIT``, or ``ROLLBACK`` on any exception (re-raised). Nested, it
        joins the open transaction: everything commits (or rolls back) with the outermost."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.con.execute("BEGIN")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self.con.execute("ROLLBACK")
            raise
        self._depth = 0
        self.con.execute("COMMIT")

    def insert_arrow(self, table_name: str, table: pa.Table) -> None:
        """Append an Arrow table whose columns are ``table_name``'s, in its order."""
        self.con.register("_incoming", table)
        try:
            self.con.execute(f"INSERT INTO {table_name} SELECT * FROM _incoming")
        finally:
            self.con.unregister("_incoming")
