"""The training data and the held-out split stay valid: counts, no leaks, every annotation
normalizes (with the bot's own validators) to its stated value."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
CHECK = [sys.executable, str(ROOT / "scripts" / "check_nlu_data.py"), "-q"]


def test_the_repository_data_passes_the_checker() -> None:
    result = subprocess.run(CHECK, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checker_catches_a_bad_cpf_and_a_leak(tmp_path: Path) -> None:
    train = tmp_path / "train"
    train.mkdir()
    (train / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: inform_document\n  examples: |\n'
        '    - meu cpf é [123.456.789-00]{"entity": "cpf", "value": "12345678900"}\n'
        "    - oi tudo bem\n",
        encoding="utf-8",
    )
    holdout = tmp_path / "holdout.yml"
    holdout.write_text(
        'version: "3.1"\nnlu:\n- intent: inform_document\n  examples: |\n    - Oi, tudo bem?\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [
            *CHECK,
            "--train-dir",
            str(train),
            "--holdout",
            str(holdout),
            "--min-train",
            "1",
            "--min-holdout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "invalid check digits" in result.stdout
    assert "is in the training data" in result.stdout
