"""`tratativa eval nlu PATH`: score the trained Rasa model on a labelled NLU file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.nlu_eval.metrics import Report, evaluate
from api.nlu_eval.runner import NluEvalError, run_predictions

eval_app = typer.Typer(help="Evaluate the bot's NLU.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}"


def print_report(report: Report, console: Console, *, errors: int = 20) -> None:
    """The readable report: summary, per-intent and per-entity tables, confusions, errors."""
    console.print(
        f"[bold]{report.examples}[/bold] examples — intent accuracy "
        f"[bold]{_pct(report.intent_accuracy)}%[/bold], macro-F1 "
        f"[bold]{_pct(report.intent_macro_f1)}%[/bold]; entity F1 "
        f"[bold]{_pct(report.entity_overall.f1)}%[/bold] "
        f"(P {_pct(report.entity_overall.precision)}%, R {_pct(report.entity_overall.recall)}%)"
    )

    intents = Table(title="Intents", title_justify="left")
    for column in ("intent", "precision", "recall", "F1", "support"):
        intents.add_column(column, justify="left" if column == "intent" else "right")
    for name, s in sorted(report.per_intent.items(), key=lambda item: item[1].f1):
        style = "red" if s.f1 < 0.8 else None
        intents.add_row(
            name, _pct(s.precision), _pct(s.recall), _pct(s.f1), str(s.support), style=style
        )
    console.print(intents)

    if report.per_entity:
        entities = Table(title="Entities (label and span, as rasa test)", title_justify="left")
        for column in ("entity", "precision", "recall", "F1", "support"):
            entities.add_column(column, justify="left" if column == "entity" else "right")
        for name, s in report.per_entity.items():
            entities.add_row(name, _pct(s.precision), _pct(s.recall), _pct(s.f1), str(s.support))
        console.print(entities)

    if report.confused_pairs:
        confusions = Table(title="Most confused (expected → predicted)", title_justify="left")
        confusions.add_column("expected")
        confusions.add_column("predicted")
        confusions.add_column("count", justify="right")
        for pair in report.confused_pairs:
            confusions.add_row(pair.expected, pair.predicted, str(pair.count))
        console.print(confusions)

    if report.errors and errors > 0:
        wrong = Table(title=f"Misclassified (first {errors})", title_justify="left")
        wrong.add_column("text", overflow="fold")
        wrong.add_column("expected")
        wrong.add_column("predicted")
        wrong.add_column("conf.", justify="right")
        for p in report.errors[:errors]:
            wrong.add_row(
                p.text, p.expected_intent, p.predicted_intent or "-", f"{p.confidence:.2f}"
            )
        console.print(wrong)


@eval_app.command("nlu")
def nlu(
    path: Annotated[Path, typer.Argument(help="Rasa NLU YAML file with labelled examples.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
    model: Annotated[
        Path | None, typer.Option(help="Model archive (default: newest in models/).")
    ] = None,
    text_report: Annotated[
        Path | None,
        typer.Option(help="Also write the readable report to this file (one prediction run)."),
    ] = None,
) -> None:
    """Predict every example of PATH with the trained model and score intents and entities."""
    try:
        predictions = run_predictions(path, model=model)
    except NluEvalError as exc:
        err.print(f"[red]erro:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    report = evaluate(predictions)
    if text_report is not None:
        with text_report.open("w", encoding="utf-8") as handle:
            print_report(report, Console(file=handle, width=140, color_system=None))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        print_report(report, out)
