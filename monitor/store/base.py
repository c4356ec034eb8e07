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

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN`` … ``COMMIT``, or ``ROLLBACK`` on any exception (re-raised)."""
        self.con.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def insert_arrow(self, table_name: str, table: pa.Table) -> None:
        """Append an Arrow table whose columns are ``table_name``'s, in its order."""
        self.con.register("_incoming", table)
        try:
            self.con.execute(f"INSERT INTO {table_name} SELECT * FROM _incoming")
        finally:
            self.con.unregister("_incoming")
