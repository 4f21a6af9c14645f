"""The intent model the bot runs (bot/nlu_model.py), in the Rasa environment where it lives.

* The model archive holds the fitted classifier as plain data (JSON + .npz, no pickle); the
  restored model must give the same probabilities and decisions as the scikit-learn one.
* "Known words" for the out-of-scope rule come from in-scope examples only: a word seen only in
  out_of_scope chatter does not make an unrelated message look familiar.

bot/nlu_model.py needs scikit-learn and spaCy, which only the Rasa environment (.venv-rasa,
Python 3.10) has, so the checks run there in a subprocess.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

SCRIPT = r"""
import io, json, sys
import numpy as np
from bot.nlu_model import IntentModel

data = {
    "ask_amount": ["quanto e", "qual o valor", "quanto custa para resolver", "valor do acordo",
                   "quanto tenho que pagar", "qual o valor total"],
    "request_payment": ["manda o pix", "manda o boleto", "qual a chave pix", "envia o link",
                        "quero pagar manda os dados", "gera o boleto"],
    "affirm": ["sim", "ok", "pode ser", "claro", "isso mesmo", "com certeza"],
    "out_of_scope": ["minha sogra chega sabado", "o churrasco foi bom", "receita de bolo",
                     "o jogo foi ontem", "sogra e churrasco no domingo", "vai chover amanha"],
}
texts = [t for ts in data.values() for t in ts]
intents = [i for i, ts in data.items() for _ in ts]
model = IntentModel(threshold=0.0, min_coverage=0.5, unknown_threshold=1.01).fit(texts, intents)
meta, arrays = model.export()
buffer = io.BytesIO()
np.savez(buffer, **arrays)
buffer.seek(0)
with np.load(buffer, allow_pickle=False) as stored:
    loaded = {name: stored[name] for name in stored.files}
restored = IntentModel(threshold=0.0, min_coverage=0.5, unknown_threshold=1.01).restore(
    json.loads(json.dumps(meta)), loaded
)
probe = ["quanto e o valor", "manda pix", "sim pode", "sogra churrasco", "", "xyzzy"]
before, after = model.decide(probe), restored.decide(probe)
print(json.dumps({
    "max_difference": float(np.abs(model.probabilities(probe) - restored.probabilities(probe)).max()),
    "same_intents": [a.intent for a in before] == [b.intent for b in after],
    "intents": [a.intent for a in after],
    "coverage_chatter": restored.coverage("sogra churrasco"),
    "coverage_case": restored.coverage("valor boleto"),
    "restored_has_no_estimator": restored.pipeline is None,
    "one_by_one_difference": float(np.abs(
        np.vstack([restored.probabilities([text]) for text in texts + probe])
        - restored.probabilities(texts + probe)
    ).max()),
    "one_by_one_same_intents": [restored.decide([t])[0].intent for t in texts + probe]
    == [d.intent for d in restored.decide(texts + probe)],
}))
"""


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    if not RASA_PYTHON.exists():
        pytest.skip("no Rasa environment (.venv-rasa); run `make .venv-rasa/.installed`")
    run = subprocess.run(
        [str(RASA_PYTHON), "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def test_the_restored_model_predicts_what_the_fitted_one_does(result: dict[str, object]) -> None:
    assert result["restored_has_no_estimator"] is True
    assert isinstance(result["max_difference"], float) and result["max_difference"] < 1e-9
    assert result["same_intents"] is True
    assert result["intents"][:3] == ["ask_amount", "request_payment", "affirm"]  # type: ignore[index]


def test_one_message_at_a_time_reads_as_in_a_batch(result: dict[str, object]) -> None:
    """The served path (one message per turn, no sparse matrices) gives the batch's
    probabilities and intents."""
    assert isinstance(result["one_by_one_difference"], float)
    assert result["one_by_one_difference"] < 1e-12
    assert result["one_by_one_same_intents"] is True


def test_words_seen_only_in_out_of_scope_chatter_are_not_known(
    result: dict[str, object],
) -> None:
    assert result["coverage_chatter"] == 0.0
    assert result["coverage_case"] == 1.0
    # With no known word and an unknown_threshold above any confidence, it falls back.
    assert result["intents"][3] == "nlu_fallback"  # type: ignore[index]
