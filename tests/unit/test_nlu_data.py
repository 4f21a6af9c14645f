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


def _nlu(intent: str, *examples: str) -> str:
    lines = "".join(f"    - {e}\n" for e in examples)
    return f'version: "3.1"\nnlu:\n- intent: {intent}\n  examples: |\n{lines}'


def test_intents_come_from_domain_yml_and_blocks_are_read_with_pyyaml(tmp_path: Path) -> None:
    domain = tmp_path / "domain.yml"
    domain.write_text('version: "3.1"\nintents:\n  - greet\n  - ask_refund\n', encoding="utf-8")
    train = tmp_path / "train"
    train.mkdir()
    (train / "nlu.yml").write_text(
        _nlu("greet", "oi", "bom dia")
        + _nlu("not_declared", "quero outra coisa").split("nlu:\n", 1)[1]
        + "- synonym: Mercado Livre\n  examples: |\n    - ML\n",
        encoding="utf-8",
    )
    holdout = tmp_path / "holdout.yml"
    holdout.write_text(_nlu("greet", "boa tarde pessoal"), encoding="utf-8")
    result = subprocess.run(
        [
            *CHECK,
            "--domain",
            str(domain),
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
    assert "intent 'not_declared' is not declared in domain.yml" in result.stdout
    assert "intent ask_refund: 0 train examples" in result.stdout
    assert "'synonym' blocks are not allowed (only intent)" in result.stdout
    assert "intent greet" not in result.stdout


def test_marketplaces_are_the_identifiers_own_list() -> None:
    import importlib.util

    from api.identifiers.contact import MARKETPLACES

    spec = importlib.util.spec_from_file_location("check_nlu", ROOT / "scripts/check_nlu_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_nlu"] = module
    spec.loader.exec_module(module)
    assert module.CANONICAL_MARKETPLACES is MARKETPLACES
