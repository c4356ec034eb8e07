"""``mlgate demo``: the end-to-end tour (see :mod:`mlgate.demo`)."""

from __future__ import annotations

import typer

from mlgate.cli.common import HomeOption, console, fail


def attach(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(home: HomeOption = None) -> None:
        """Train, register, serve, query, canary + shadow, promote, drift, alert, report:
        the whole loop on embedded defaults, under <home>/demo (made afresh each run)."""
        from mlgate.demo import DemoError, run_demo
        from mlgate.settings import resolve

        where = resolve(home=home).home / "demo"
        try:
            report = run_demo(where, console)
        except DemoError as exc:
            fail(str(exc))
        console.print(f"\ndone: everything is under {where}; open {report}", highlight=False)

    del demo
