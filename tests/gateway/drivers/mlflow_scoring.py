"""Drive a server with MLflow's scoring-server client (``ScoringServerClient``, what MLflow's
own tests and ``mlflow models serve`` users call), and print what it answered as one JSON object.

    python -P mlflow_scoring.py '{"host": "127.0.0.1", "port": 8080,
                                  "columns": ["x0", ...], "rows": [[...]]}'

Only MLflow, pandas, numpy and the standard library are imported (no mlgate code).
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import Any

import numpy as np
import pandas as pd
import requests

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # MLflow's import-time notices are not what is tested
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient


def _failure(call: Any) -> str:
    """The text of the exception a call raised ('' if it did not fail)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the client raises a bare Exception on non-200
        return str(exc)
    return ""


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    client = ScoringServerClient(cfg["host"], cfg["port"])
    client.wait_server_ready(timeout=30)
    rows = np.array(cfg["rows"], dtype=np.float32)
    frame = pd.DataFrame(rows, columns=cfg["columns"])
    by_frame = client.invoke(frame)
    by_array = client.invoke(rows)
    url = f"http://{cfg['host']}:{cfg['port']}"
    bad = requests.post(
        f"{url}/invocations",
        json={"dataframe_split": {"columns": cfg["columns"][:-1], "data": rows[:, :-1].tolist()}},
        timeout=30,
    )
    return {
        "version": client.get_version(),
        "ping": _failure(client.ping) == "",
        "frame": by_frame.get_predictions(predictions_format="ndarray").tolist(),
        "array": by_array.get_predictions(predictions_format="ndarray").tolist(),
        "missing_column_client": _failure(lambda: client.invoke(frame.iloc[:, :-1])),
        "missing_column": [bad.status_code, bad.json()],
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
