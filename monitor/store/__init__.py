"""The monitor's DuckDB file. :class:`MonitorStore` owns every table read and write; the other
stages hand it and get back named rows (``monitor.store.rows``)."""

from monitor.store.db import MonitorStore, StoreBusy

__all__ = ["MonitorStore", "StoreBusy"]
