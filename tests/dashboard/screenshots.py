"""Every dashboard page of an installation in headless Chromium, as a user sees it: starts
``mlgate ui`` on ``--home``, loads each page of ``--model``, fails on a console error or a
page that does not fill, prints what each page shows and writes its screenshot.

The README's screenshots are made from ``mlgate demo``'s data (``make demo``, then)::

    .venv/bin/python -m tests.dashboard.screenshots --home .mlgate/demo --out docs/img
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from tests.dashboard.cdp import Browser
from tests.helpers import free_port, wait_for

# (file name, path): the README shows these four
PAGES = (
    ("dashboard-models.png", "/"),
    ("dashboard-model.png", "/models/{model}"),
    ("dashboard-drift.png", "/models/{model}/drift"),
    ("dashboard-events.png", "/events"),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, required=True, help="installation (mlgate demo's)")
    p.add_argument("--model", default="loans", help="the model whose pages are loaded")
    p.add_argument("--out", type=Path, default=None, help="folder for the screenshots")
    p.add_argument(
        "--traffic-window-s",
        type=float,
        default=3600.0,
        help="traffic span shown (the demo's traffic is minutes old by now)",
    )
    args = p.parse_args()
    port = free_port()
    # the installation's mlgate.toml, with the traffic span of the screenshots
    config = args.home / "mlgate.toml"
    text = config.read_text() if config.exists() else ""
    if "[dashboard]" not in text:
        text += f"\n[dashboard]\ntraffic_window_s = {args.traffic_window_s}\n"
    shot_config = Path(tempfile.mkdtemp()) / "mlgate.toml"
    shot_config.write_text(text)
    env = {
        **os.environ,
        "MLGATE_ADMIN_TOKEN": "screenshot",  # the action buttons show
        "MLGATE_CONFIG": str(shot_config),
    }
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", "from mlgate.cli import main; main()", "ui",
         "--home", str(args.home), "--port", str(port)],
        cwd=args.home, env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, "mlgate ui exited"
        try:
            return httpx.get(f"{base}/static/app.js", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    failed = []
    try:
        wait_for(up, 120, 0.2)
        with tempfile.TemporaryDirectory() as profile:
            browser = Browser(Path(profile))
            try:
                for name, path in PAGES:
                    browser.open(base + path.format(model=args.model))
                    shown = browser.js("document.getElementById('main').innerText")
                    print(f"== {path.format(model=args.model)}\n{shown[:1200]}\n")
                    if browser.errors:
                        failed.append(f"{path}: {browser.errors}")
                        browser.errors.clear()
                    if args.out is not None:
                        browser.screenshot(args.out / name)
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    if failed:
        raise SystemExit("console errors:\n" + "\n".join(failed))


if __name__ == "__main__":
    main()
