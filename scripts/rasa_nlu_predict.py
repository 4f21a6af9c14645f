#!/usr/bin/env python
"""Predict intents and entities for every example of a Rasa NLU YAML file.

Run with the Rasa environment (Python 3.10):

    .venv-rasa/bin/python scripts/rasa_nlu_predict.py tests/data/nlu_test.yml [--model PATH]

Writes one JSON object per example to stdout ({"text", "expected_intent",
"expected_entities", "predicted_intent", "confidence", "predicted_entities", ...}); logs go to
stderr. The model defaults to the newest models/*.tar.gz. api/nlu_eval reads the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

REPO_ROOT = Path(__file__).resolve().parent.parent
FALLBACK_INTENT = "nlu_fallback"


def newest_model(models_dir: Path) -> Path:
    """The most recently written model archive in `models_dir`."""
    models = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise SystemExit(f"no trained model in {models_dir} (run `make train`)")
    return models[-1]


def _entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "entity": e["entity"],
            "value": e.get("value"),
            "start": e.get("start"),
            "end": e.get("end"),
            **({"extractor": e["extractor"]} if "extractor" in e else {}),
        }
        for e in entities
    ]


async def predict(model: Path, data: Path, out: TextIO) -> int:
    """Parse every example of `data` with `model`; write JSON lines to `out`."""
    from rasa.core.agent import Agent
    from rasa.shared.nlu.constants import ENTITIES, INTENT, TEXT
    from rasa.shared.nlu.training_data.loading import load_data

    training_data = load_data(str(data))
    agent = Agent.load(str(model))
    count = 0
    for example in training_data.intent_examples:
        text = example.get(TEXT)
        parsed = await agent.parse_message(text)
        intent = parsed.get("intent") or {}
        ranking = parsed.get("intent_ranking") or []
        classifier_intent = next(
            (r["name"] for r in ranking if r.get("name") != FALLBACK_INTENT), None
        )
        row = {
            "text": text,
            "expected_intent": example.get(INTENT),
            "expected_entities": _entities(example.get(ENTITIES) or []),
            "predicted_intent": intent.get("name"),
            "confidence": float(intent.get("confidence") or 0.0),
            # The best intent other than nlu_fallback, to tell a low-confidence right
            # answer from a wrong one.
            "classifier_intent": classifier_intent,
            "predicted_entities": _entities(parsed.get("entities") or []),
            "intent_ranking": [
                {"name": r.get("name"), "confidence": float(r.get("confidence") or 0.0)}
                for r in ranking[:5]
            ],
        }
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    out.flush()
    return count


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="Rasa NLU YAML file")
    parser.add_argument("--model", type=Path, help="model archive (default: newest in models/)")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))  # the pipeline's custom components live in bot/
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    if not args.data.is_file():
        print(f"no such file: {args.data}", file=sys.stderr)
        return 2
    model = args.model or newest_model(REPO_ROOT / "models")
    if not model.is_file():
        print(f"no such model: {model}", file=sys.stderr)
        return 2

    # Rasa prints some notices with print(): keep stdout for the JSON lines only.
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        count = asyncio.run(predict(model, args.data, out))
    finally:
        sys.stdout = out
    print(f"{count} examples predicted with {model}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
