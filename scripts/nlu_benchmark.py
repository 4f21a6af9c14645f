#!/usr/bin/env python
"""NLU benchmark: the bot's model against a TF-IDF + logistic-regression baseline.

Run with the Rasa environment (Python 3.10), after `make train` (`make eval-nlu` does both):

    .venv-rasa/bin/python scripts/nlu_benchmark.py [--model models/tratativa.tar.gz]
        [--train-time results/train.time] [--json results/nlu_benchmark.json]

In one run, on the same data:

* held-out test set (tests/data/nlu_test.yml, written apart from data/nlu): intent macro-F1
  and accuracy of the trained Rasa model (the real pipeline, parsed like the server does) and
  of the baseline trained on the same training data; entities scored by label and span;
* out-of-scope slice (tests/data/nlu_test_oos.yml): share routed to the fallback, i.e.
  predicted nlu_fallback or out_of_scope (both run action_fallback);
* in-scope accuracy with and without the out-of-scope decision (what the fallback costs);
* 5-fold stratified cross-validation of data/nlu, same folds for model and baseline;
* a calibration table of the out-of-scope decision over the cross-validated predictions;
* training time and peak memory (from `/usr/bin/time -f "%e %M"` of the training run), and
  the memory of a process that loads the model and parses a message, like the server;
* the targets of issue 17, each marked met or not.

For scoring, nlu_fallback counts as out_of_scope: the bot does the same for both.
The baseline is deliberately plain: TfidfVectorizer(word 1-2-grams) + TfidfVectorizer(char_wb
2-5-grams) on the raw lowercased text, LogisticRegression(C=10), no fallback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"
# Model-server memory before issue 17 (count vectors + LogisticRegressionClassifier +
# FallbackClassifier, commit 34be4ab), measured with `--measure-memory` on this machine:
# peak RSS in MB of loading the model and parsing one message.
MEMORY_BEFORE_MB = 594.0

TARGETS = {
    "heldout_macro_f1": 0.95,
    "margin_over_baseline": 0.02,
    "cv_macro_f1": 0.90,
    "oos_routed": 0.95,
    "in_scope_accuracy_drop": 0.01,
    "train_seconds": 180.0,
}
# The calibration rule: the most out_of_scope routed while the fallback costs at most this
# share of right in-scope answers over the cross-validated predictions.
CALIBRATION_MAX_LOST = 0.005


def load_examples(path: Path) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(text, intent, entities) of every intent example of a Rasa NLU file or directory."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [
        (
            str(m.get("text")),
            str(m.get("intent")),
            [
                {
                    "entity": e["entity"],
                    "value": e.get("value"),
                    "start": e.get("start"),
                    "end": e.get("end"),
                }
                for e in m.get("entities") or []
            ],
        )
        for m in data.intent_examples
    ]


def registers(texts: Sequence[str]) -> dict[str, list[int]]:
    """Indexes of the e-mail register (starts with a capital, not all caps, as
    scripts/check_nlu_data.py reads it) and of the WhatsApp register (the rest)."""
    email = [i for i, t in enumerate(texts) if t[:1].isupper() and not t.isupper()]
    chat = [i for i in range(len(texts)) if i not in set(email)]
    return {"whatsapp": chat, "email": email}


def fallback_as_oos(intent: str | None) -> str:
    return OUT_OF_SCOPE if intent in (None, FALLBACK) else intent


def macro_f1(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(
        f1_score(
            truth,
            [fallback_as_oos(p) for p in predicted],
            labels=list(labels),
            average="macro",
            zero_division=0,
        )
    )


def accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    pairs = list(zip(truth, predicted, strict=True))
    return sum(t == fallback_as_oos(p) for t, p in pairs) / len(pairs) if pairs else 0.0


def baseline() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    return make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        ),
        LogisticRegression(C=10.0, max_iter=2000),
    )


def model_options(config: Path) -> dict[str, Any]:
    """The LexiconIntentClassifier options of config.yml."""
    import yaml

    numeric = ("c", "lexicon_weight", "threshold", "min_coverage", "unknown_threshold")
    for step in yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]:
        if str(step.get("name", "")).endswith("LexiconIntentClassifier"):
            options: dict[str, Any] = {k: float(v) for k, v in step.items() if k in numeric}
            if "class_weight" in step:
                options["class_weight"] = str(step["class_weight"])
            return options
    raise SystemExit(f"{config}: no LexiconIntentClassifier in the pipeline")


async def _parse_all(model: Path, texts: Sequence[str]) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    return [await agent.parse_message(text) for text in texts]


def measure_memory(model: Path) -> float:
    """Peak RSS (MB) of a fresh process that loads the model and parses one message."""
    code = (
        f"import asyncio, sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from rasa.core.agent import Agent\n"
        f"agent = Agent.load({str(model)!r})\n"
        "asyncio.run(agent.parse_message('oi, quanto é pra resolver?'))\n"
        # VmHWM, not ru_maxrss: Linux carries the parent's peak across fork and exec.
        "status = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
        "print(int(status) / 1024)\n"
    )
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "RASA_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(REPO_ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=600,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def cross_validate(
    texts: Sequence[str],
    normalized: Sequence[str],
    intents: Sequence[str],
    options: dict[str, Any],
    folds: int,
) -> dict[str, Any]:
    """Out-of-fold predictions of the model (with its decisions) and of the baseline."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    from bot.nlu_model import IntentModel

    labels = np.asarray(intents)
    model_pred: list[str] = [""] * len(texts)
    base_pred: list[str] = [""] * len(texts)
    decisions: list[Any] = [None] * len(texts)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=42)
    for train_idx, test_idx in splitter.split(np.zeros(len(texts)), labels):
        model = IntentModel(**options).fit([normalized[i] for i in train_idx], labels[train_idx])
        for i, d in zip(test_idx, model.decide([normalized[i] for i in test_idx]), strict=True):
            model_pred[i], decisions[i] = d.intent, d
        base = baseline().fit([texts[i] for i in train_idx], labels[train_idx])
        for i, p in zip(test_idx, base.predict([texts[i] for i in test_idx]), strict=True):
            base_pred[i] = str(p)
    return {"model": model_pred, "baseline": base_pred, "decisions": decisions}


def calibration_table(decisions: Sequence[Any], intents: Sequence[str]) -> list[dict[str, float]]:
    """For each (min_coverage, threshold, unknown_threshold): in-scope examples the fallback
    costs (right answers turned into nlu_fallback) and out_of_scope examples routed to the
    fallback, over the cross-validated decisions."""
    rows = []
    for min_coverage in (0.34, 0.5, 0.67):
        for threshold in (0.0, 0.1, 0.15, 0.2, 0.25, 0.3):
            for unknown in (0.0, 0.3, 0.4, 0.5, 0.6):
                lost = routed = n_in = n_oos = 0
                for d, truth in zip(decisions, intents, strict=True):
                    best = d.ranking[0][0]
                    falls = d.confidence < threshold or (
                        d.coverage is not None
                        and d.coverage < min_coverage
                        and d.confidence < unknown
                    )
                    intent = FALLBACK if falls else best
                    if truth == OUT_OF_SCOPE:
                        n_oos += 1
                        routed += fallback_as_oos(intent) == OUT_OF_SCOPE
                    else:
                        n_in += 1
                        lost += falls and best == truth
                rows.append(
                    {
                        "min_coverage": min_coverage,
                        "threshold": threshold,
                        "unknown_threshold": unknown,
                        "in_scope_lost": lost / max(n_in, 1),
                        "oos_routed": routed / max(n_oos, 1),
                    }
                )
    return rows


def _setting(row: dict[str, float]) -> tuple[float, float, float]:
    return (row["min_coverage"], row["threshold"], row["unknown_threshold"])


def entity_report(
    expected: Sequence[list[dict[str, Any]]], parsed: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    from api.nlu_eval.metrics import Prediction, entity_scores

    predictions = [
        Prediction.from_dict(
            {
                "expected_intent": "-",
                "predicted_intent": "-",
                "expected_entities": want,
                "predicted_entities": p.get("entities") or [],
            }
        )
        for want, p in zip(expected, parsed, strict=True)
    ]
    overall, per_type = entity_scores(predictions)
    return {"overall": overall.as_dict(), "per_type": {k: v.as_dict() for k, v in per_type.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "tratativa.tar.gz")
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config.yml")
    parser.add_argument("--train-dir", type=Path, default=REPO_ROOT / "data" / "nlu")
    parser.add_argument("--test", type=Path, default=REPO_ROOT / "tests/data/nlu_test.yml")
    parser.add_argument("--oos", type=Path, default=REPO_ROOT / "tests/data/nlu_test_oos.yml")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--train-time", type=Path, help='file with "<seconds> <peak KB>"')
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--errors", type=int, default=25, help="misclassified test rows shown")
    parser.add_argument(
        "--measure-memory",
        action="store_true",
        help="only print the peak RSS (MB) of loading --model and parsing",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    if args.measure_memory:
        print(f"{measure_memory(args.model):.0f}")
        return 0
    if not args.model.is_file():
        print(f"no model at {args.model} (run `make train`)", file=sys.stderr)
        return 2

    from bot.components.normalizer import blank_pipeline, normalized_text

    started = time.monotonic()
    train = load_examples(args.train_dir)
    test = load_examples(args.test)
    oos = load_examples(args.oos)
    nlp = blank_pipeline()
    train_texts = [t for t, _, _ in train]
    train_intents = [i for _, i, _ in train]
    labels = sorted(set(train_intents))
    test_texts = [t for t, _, _ in test]
    test_intents = [i for _, i, _ in test]
    oos_texts = [t for t, _, _ in oos]

    # The real pipeline, as the server runs it (stdout is Rasa's; keep ours clean).
    stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        parsed = asyncio.run(_parse_all(args.model, test_texts + oos_texts))
    finally:
        sys.stdout = stdout
    parsed_test, parsed_oos = parsed[: len(test)], parsed[len(test) :]
    model_test = [str((p.get("intent") or {}).get("name")) for p in parsed_test]
    classifier_test = [
        next((r["name"] for r in p.get("intent_ranking") or [] if r["name"] != FALLBACK), "")
        for p in parsed_test
    ]
    model_oos = [str((p.get("intent") or {}).get("name")) for p in parsed_oos]

    base = baseline().fit(train_texts, train_intents)
    base_test = [str(p) for p in base.predict(test_texts)]
    base_oos = [str(p) for p in base.predict(oos_texts)]

    options = model_options(args.config)
    cv = cross_validate(
        train_texts,
        [normalized_text(nlp, t) for t in train_texts],
        train_intents,
        options,
        args.folds,
    )

    in_scope = [i for i, t in enumerate(test_intents) if t != OUT_OF_SCOPE]
    figures: dict[str, Any] = {
        "examples": {"train": len(train), "test": len(test), "oos": len(oos)},
        "heldout_macro_f1": {
            "model": macro_f1(test_intents, model_test, labels),
            "baseline": macro_f1(test_intents, base_test, labels),
            "model_without_fallback": macro_f1(test_intents, classifier_test, labels),
        },
        "heldout_accuracy": {
            "model": accuracy(test_intents, model_test),
            "baseline": accuracy(test_intents, base_test),
        },
        "in_scope_accuracy": {
            "model": accuracy(
                [test_intents[i] for i in in_scope], [model_test[i] for i in in_scope]
            ),
            "model_without_fallback": accuracy(
                [test_intents[i] for i in in_scope], [classifier_test[i] for i in in_scope]
            ),
            "baseline": accuracy(
                [test_intents[i] for i in in_scope], [base_test[i] for i in in_scope]
            ),
        },
        "oos_routed": {
            "model": sum(fallback_as_oos(p) == OUT_OF_SCOPE for p in model_oos) / len(oos),
            "baseline": sum(p == OUT_OF_SCOPE for p in base_oos) / len(oos),
        },
        "cv_macro_f1": {
            "model": macro_f1(train_intents, cv["model"], labels),
            "baseline": macro_f1(train_intents, cv["baseline"], labels),
            "folds": args.folds,
        },
        "by_register": {
            register: {
                "examples": len(idx),
                "model": accuracy([test_intents[i] for i in idx], [model_test[i] for i in idx]),
                "baseline": accuracy([test_intents[i] for i in idx], [base_test[i] for i in idx]),
            }
            for register, idx in registers(test_texts).items()
        },
        "entities": entity_report([e for _, _, e in test], parsed_test),
        "model_options": options,
        "calibration": calibration_table(cv["decisions"], train_intents),
    }
    if args.train_time and args.train_time.is_file():
        seconds, peak_kb = args.train_time.read_text().split()[:2]
        figures["training"] = {"seconds": float(seconds), "peak_rss_mb": float(peak_kb) / 1024}
    figures["server_memory_mb"] = {
        "model": measure_memory(args.model),
        "before_issue_17": MEMORY_BEFORE_MB,
    }
    figures["benchmark_seconds"] = time.monotonic() - started

    errors = [
        (t, e, p)
        for t, e, p in zip(test_texts, test_intents, model_test, strict=True)
        if e != fallback_as_oos(p)
    ]
    oos_missed = [
        (t, p)
        for t, p in zip(oos_texts, model_oos, strict=True)
        if fallback_as_oos(p) != OUT_OF_SCOPE
    ]
    print_report(figures, errors[: args.errors], oos_missed)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0


def recommended(table: Sequence[dict[str, float]]) -> dict[str, float]:
    """The calibration row the rule picks: most routed, then least lost; among equals the
    highest thresholds (they catch more of what cross-validation does not show)."""
    allowed = [r for r in table if r["in_scope_lost"] <= CALIBRATION_MAX_LOST]
    return min(
        allowed,
        key=lambda r: (
            -round(r["oos_routed"], 3),
            round(r["in_scope_lost"], 3),
            -r["threshold"],
            -r["unknown_threshold"],
            -r["min_coverage"],
        ),
    )


def targets(figures: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) rows."""
    f1 = figures["heldout_macro_f1"]
    in_scope = figures["in_scope_accuracy"]
    drop = in_scope["model_without_fallback"] - in_scope["model"]
    rows: list[tuple[str, str, bool | None]] = [
        (
            f"held-out macro-F1 >= {TARGETS['heldout_macro_f1']:.2f}",
            f"{f1['model']:.3f}",
            f1["model"] >= TARGETS["heldout_macro_f1"],
        ),
        (
            f"held-out macro-F1 >= baseline + {TARGETS['margin_over_baseline'] * 100:.0f} points",
            f"{f1['model']:.3f} vs {f1['baseline']:.3f} ({(f1['model'] - f1['baseline']) * 100:+.1f})",
            f1["model"] - f1["baseline"] >= TARGETS["margin_over_baseline"],
        ),
        (
            f"{figures['cv_macro_f1']['folds']}-fold CV macro-F1 >= {TARGETS['cv_macro_f1']:.2f}",
            f"{figures['cv_macro_f1']['model']:.3f} (baseline {figures['cv_macro_f1']['baseline']:.3f})",
            figures["cv_macro_f1"]["model"] >= TARGETS["cv_macro_f1"],
        ),
        (
            f"out-of-scope slice routed to fallback >= {TARGETS['oos_routed']:.2f}",
            f"{figures['oos_routed']['model']:.3f} (baseline {figures['oos_routed']['baseline']:.3f})",
            figures["oos_routed"]["model"] >= TARGETS["oos_routed"],
        ),
        (
            f"in-scope accuracy kept (fallback costs <= {TARGETS['in_scope_accuracy_drop'] * 100:.0f} point)",
            f"{in_scope['model']:.3f} vs {in_scope['model_without_fallback']:.3f} without it",
            drop <= TARGETS["in_scope_accuracy_drop"],
        ),
    ]
    training = figures.get("training")
    rows.append(
        (
            f"training <= {TARGETS['train_seconds']:.0f} s",
            f"{training['seconds']:.1f} s (peak {training['peak_rss_mb']:.0f} MB)"
            if training
            else "not measured",
            training["seconds"] <= TARGETS["train_seconds"] if training else None,
        )
    )
    memory = figures["server_memory_mb"]
    rows.append(
        (
            "model-server memory no worse than before",
            f"{memory['model']:.0f} MB vs {memory['before_issue_17']:.0f} MB",
            memory["model"] <= memory["before_issue_17"] * 1.02
            if memory["before_issue_17"]
            else None,
        )
    )
    return rows


def print_report(
    figures: dict[str, Any], errors: list[tuple[str, str, str]], oos_missed: list[tuple[str, str]]
) -> None:
    n = figures["examples"]
    print(
        f"NLU benchmark — train {n['train']}, held-out test {n['test']}, "
        f"out-of-scope slice {n['oos']} (nlu_fallback scored as out_of_scope)\n"
    )
    print(f"{'':38}{'model':>10}{'baseline':>10}")
    for key, title in (
        ("heldout_macro_f1", "held-out intent macro-F1"),
        ("heldout_accuracy", "held-out intent accuracy"),
        ("in_scope_accuracy", "in-scope accuracy"),
        ("oos_routed", "out-of-scope slice -> fallback"),
        ("cv_macro_f1", f"{figures['cv_macro_f1']['folds']}-fold CV macro-F1"),
    ):
        row = figures[key]
        print(f"{title:38}{row['model']:>10.3f}{row['baseline']:>10.3f}")
    print(
        f"{'  model without the fallback decision':38}"
        f"{figures['heldout_macro_f1']['model_without_fallback']:>10.3f}  (macro-F1; in-scope "
        f"accuracy {figures['in_scope_accuracy']['model_without_fallback']:.3f})"
    )
    for register, row in figures["by_register"].items():
        print(
            f"{'  accuracy, ' + register + ' register (' + str(row['examples']) + ')':38}"
            f"{row['model']:>10.3f}{row['baseline']:>10.3f}"
        )
    ent = figures["entities"]
    print(
        f"\nEntities on the held-out set (label and span, as rasa test): "
        f"P {ent['overall']['precision']:.3f} R {ent['overall']['recall']:.3f} "
        f"F1 {ent['overall']['f1']:.3f}"
    )
    for name, s in ent["per_type"].items():
        print(
            f"  {name:14} P {s['precision']:.2f} R {s['recall']:.2f} F1 {s['f1']:.2f} "
            f"(support {s['support']})"
        )
    opts = figures["model_options"]
    configured = (
        opts.get("min_coverage"),
        opts.get("threshold"),
        opts.get("unknown_threshold"),
    )
    print(
        f"\nOut-of-scope calibration over the cross-validated predictions (configured: "
        f"threshold {configured[1]}, unknown_threshold {configured[2]} under min_coverage "
        f"{configured[0]}; rows losing more than {CALIBRATION_MAX_LOST * 100:.1f}% of in-scope "
        f"answers left out):"
    )
    print(
        f"  {'coverage':>8} {'threshold':>9} {'unknown':>8} {'in-scope lost':>14} {'oos routed':>11}"
    )
    for row in figures["calibration"]:
        if row["in_scope_lost"] > CALIBRATION_MAX_LOST and _setting(row) != configured:
            continue
        mark = " <" if _setting(row) == configured else ""
        print(
            f"  {row['min_coverage']:>8.2f} {row['threshold']:>9.2f} "
            f"{row['unknown_threshold']:>8.2f} {row['in_scope_lost']:>14.3f} "
            f"{row['oos_routed']:>11.3f}{mark}"
        )
    best = recommended(figures["calibration"])
    print(
        f"  calibrated choice (<= {CALIBRATION_MAX_LOST * 100:.1f}% of in-scope lost): "
        f"min_coverage {best['min_coverage']}, threshold {best['threshold']}, "
        f"unknown_threshold {best['unknown_threshold']}"
        + ("" if _setting(best) == configured else "  <- differs from config.yml")
    )
    if errors:
        print(f"\nHeld-out errors (first {len(errors)}):")
        for text, expected, predicted in errors:
            print(f"  {expected:>24} -> {predicted:<24} {text}")
    if oos_missed:
        print("\nOut-of-scope slice not routed to the fallback:")
        for text, predicted in oos_missed:
            print(f"  {predicted:<24} {text}")
    print("\nTargets (issue 17):")
    for target, measured, met in targets(figures):
        verdict = "MET" if met else ("n/a" if met is None else "NOT MET")
        print(f"  [{verdict:^7}] {target:58} {measured}")
    print(f"\n(benchmark {figures['benchmark_seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
