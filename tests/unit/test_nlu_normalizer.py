"""The normalized form the intent classifier reads (bot/components/normalizer.py, issue 17).

WhatsApp spellings of one word read alike: stretched letters ("simmm", "simm", "oii"),
laughter however it is spelled, the usual shorthand ("qnto", "tmb", "msm"), while ordinary
words with a doubled letter inside ("carro", "passar") and two-letter shorthand ("ss", "nn")
keep their meaning. The normalizer imports Rasa, which only the Rasa environment (.venv-rasa,
Python 3.10) has, so the check runs there in a subprocess.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

CASES = {
    "simmm": "sim",
    "simm": "sim",
    "oii boa tardee": "oi boa tarde",
    "naoo": "nao",
    "kkkkkk": "risos",
    "hahaha": "risos",
    "rsrs": "risos",
    "qnto fica?": "quanto fica ?",
    "tmb quero msm": "tambem quero mesmo",
    "ss": "sim",
    "nn": "nao",
    "carro passar": "carro passar",
    "Não, obg": "nao obrigado",
    "pago em 5x": "pago em 0x",
}

SCRIPT = r"""
import json, sys
from bot.components.normalizer import blank_pipeline, normalized_text
nlp = blank_pipeline()
print(json.dumps({t: normalized_text(nlp, t) for t in json.loads(sys.argv[1])}))
"""


def test_whatsapp_spellings_read_alike() -> None:
    if not RASA_PYTHON.exists():
        pytest.skip("no Rasa environment (.venv-rasa); run `make .venv-rasa/.installed`")
    run = subprocess.run(
        [str(RASA_PYTHON), "-c", SCRIPT, json.dumps(list(CASES))],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == CASES
