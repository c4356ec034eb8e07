"""Change detectors (ADWIN, DDM) on the streams of confidence and of errors, as numpy state
that the store keeps as plain arrays. No DuckDB here: the store saves and loads the arrays."""
