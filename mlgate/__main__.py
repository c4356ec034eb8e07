"""``python -m mlgate`` is the ``mlgate`` command."""

from mlgate.cli import main

main()
