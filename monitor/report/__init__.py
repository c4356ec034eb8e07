"""What the monitor found, for people and scripts: the report document (JSON), its table
columns and its HTML rendering (``mlgate monitor report``)."""
