"""mlgate: CLI, settings and the composition of the parts into processes."""

__version__ = "0.1.0"
