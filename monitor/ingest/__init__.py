"""Reading the data plane: listing log segments, reading them in bounded batches, counting
rows into windows against the frozen reference profiles, joining feedback to predictions."""
