"""Run scripts/rasa_nlu_predict.py in the Rasa environment and read its predictions."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from api.errors import AppError

from .metrics import Prediction

REPO_ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = REPO_ROOT / ".venv-rasa" / "bin" / "python"
PREDICT_SCRIPT = REPO_ROOT / "scripts" / "rasa_nlu_predict.py"
MODELS_DIR = REPO_ROOT / "models"


class NluEvalError(AppError):
    """The evaluation could not run (no Rasa environment, no model, the script failed)."""

    code = "nlu_eval_failed"


def newest_model(models_dir: Path = MODELS_DIR) -> Path | None:
    """The most recently written model archive, or None."""
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def run_predictions(
    data: Path,
    *,
    model: Path | None = None,
    rasa_python: Path = RASA_PYTHON,
    timeout: float = 1800.0,
) -> list[Prediction]:
    """Predict every example of `data` (Rasa NLU YAML) with the model; return the rows."""
    if not rasa_python.exists():
        raise NluEvalError(
            f"Rasa environment not found ({rasa_python}); run `make .venv-rasa/.installed`"
        )
    if not data.is_file():
        raise NluEvalError(f"no such NLU data file: {data}")
    chosen = model or newest_model()
    if chosen is None or not chosen.is_file():
        raise NluEvalError(
            f"no trained model ({chosen or MODELS_DIR / '*.tar.gz'}); run `make train`"
        )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "RASA_TELEMETRY_ENABLED": "false",
    }
    command = [
        str(rasa_python),
        str(PREDICT_SCRIPT),
        str(data.resolve()),
        "--model",
        str(chosen.resolve()),
    ]
    try:
        completed = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NluEvalError(f"prediction took longer than {timeout:.0f} s") from exc
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-15:])
        raise NluEvalError(f"rasa_nlu_predict.py failed ({completed.returncode}):\n{tail}")
    return [
        Prediction.from_dict(json.loads(line))
        for line in completed.stdout.splitlines()
        if line.strip()
    ]
