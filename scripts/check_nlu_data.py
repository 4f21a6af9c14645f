#!/usr/bin/env python3
"""Sanity checks for the Rasa NLU training data and the held-out test split.

Usage:
    python scripts/check_nlu_data.py [--train-dir data/nlu] [--holdout tests/data/nlu_test.yml]
                                     [--oos tests/data/nlu_test_oos.yml]
                                     [--min-train 30] [--min-holdout 10] [--domain domain.yml]

What it checks (exit status 1 on any problem):
  * every file is `version: "3.1"` Rasa NLU YAML made only of `- intent:` blocks
    (no synonym / regex / lookup blocks: entity extraction is rule-based elsewhere);
  * every intent declared in domain.yml is present, with >= --min-train training and >= --min-holdout
    held-out examples, and no undeclared intent is used;
  * entity annotations use `[text]{"entity": ..., "value": ...}` with a contract entity
    name and a normalized value (cpf/cnpj check digits, amount, installments, phone,
    email, url, marketplace, case_ref);
  * duplicates: exact duplicates within a split, examples that are identical once case,
    accents and punctuation are ignored (within a split, or a held-out example equal to a
    training one), and held-out examples that differ from a training example by a
    single swapped word.

The files are read with PyYAML. The contract comes from its sources, never from a copy here:
intents and entities from domain.yml, canonical marketplace names from api/identifiers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import yaml  # noqa: E402

from api.identifiers import phones  # noqa: E402
from api.identifiers.case_ref import parse_case_ref  # noqa: E402
from api.identifiers.contact import MARKETPLACES, canonical_marketplace  # noqa: E402
from api.identifiers.documents import is_valid_cnpj, is_valid_cpf  # noqa: E402
from api.identifiers.errors import InvalidIdentifier  # noqa: E402
from api.identifiers.money import parse_amount, parse_installments  # noqa: E402

# --------------------------------------------------------------------------- contract

DOMAIN_FILE = REPO_ROOT / "domain.yml"


def load_contract(domain: Path = DOMAIN_FILE) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The intents and entities the bot declares (domain.yml), in their order there."""
    data = yaml.safe_load(domain.read_text(encoding="utf-8")) or {}

    def names(key: str) -> tuple[str, ...]:
        items = data.get(key) or []
        return tuple(str(next(iter(i))) if isinstance(i, dict) else str(i) for i in items)

    return names("intents"), names("entities")


CONTRACT_INTENTS, CONTRACT_ENTITIES = load_contract()
CANONICAL_MARKETPLACES: tuple[str, ...] = MARKETPLACES

# --------------------------------------------------------------------------- text helpers


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_for_dup(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form used for duplicate detection."""
    text = strip_accents(text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


# ------------------------------------------------------- identifiers (the service's own rules)
# Annotations are checked with the same validators the bot's entity extractor uses
# (api/identifiers), so training data and extraction cannot drift apart.


def _or_none(parse: Callable[[str], object]) -> Callable[[str], str | None]:
    def wrapped(text: str) -> str | None:
        try:
            return str(parse(text))
        except InvalidIdentifier:
            return None

    return wrapped


normalize_amount = _or_none(lambda text: f"{parse_amount(text):.2f}")
_installments = _or_none(parse_installments)


def normalize_installments(text: str) -> str | None:
    # Spans annotate "[dez vezes]" in "em dez vezes": the parser needs the "em" to read
    # "N vezes" as a payment plan (it ignores "liguei 3 vezes").
    return _installments(text) or _installments(f"em {text}")


normalize_phone = _or_none(lambda text: phones.normalize_phone(text))
normalize_case_ref = _or_none(parse_case_ref)


def normalize_marketplace(text: str) -> str | None:
    return canonical_marketplace(text)


cpf_is_valid = is_valid_cpf
cnpj_is_valid = is_valid_cnpj


def expected_value(entity: str, text: str) -> str | None:
    """The normalized value the contract expects for `text`, or None if unknown."""
    if entity == "cpf":
        digits = re.sub(r"\D", "", text)
        return digits if len(digits) == 11 else None
    if entity == "cnpj":
        value = re.sub(r"[^0-9A-Za-z]", "", text).upper()
        return value if len(value) == 14 else None
    if entity == "amount":
        return normalize_amount(text)
    if entity == "installments":
        return normalize_installments(text)
    if entity == "phone":
        return normalize_phone(text)
    if entity == "email":
        return text.strip().lower()
    if entity == "url":
        return text
    if entity == "marketplace":
        return normalize_marketplace(text)
    if entity == "case_ref":
        return normalize_case_ref(text)
    return None


def validate_entity(entity: str, text: str, value: str | None) -> list[str]:
    """Problems with one annotation (empty list when fine)."""
    problems: list[str] = []
    if entity not in CONTRACT_ENTITIES:
        return [f"entity {entity!r} is not in the contract"]
    if value is None:
        return [f"{entity} annotation [{text}] has no normalized value"]
    if entity == "cpf":
        if not re.fullmatch(r"\d{11}", value):
            problems.append(f"cpf value {value!r} must be 11 digits")
        elif not cpf_is_valid(value):
            problems.append(f"cpf {text!r}: invalid check digits")
    elif entity == "cnpj":
        if not re.fullmatch(r"[0-9A-Z]{12}\d{2}", value):
            problems.append(f"cnpj value {value!r} must be 12 uppercase letters/digits + 2 digits")
        elif not cnpj_is_valid(value):
            problems.append(f"cnpj {text!r}: invalid check digits")
    elif entity == "amount" and not re.fullmatch(r"\d+\.\d{2}", value):
        problems.append(f"amount value {value!r} must be a decimal with 2 places")
    elif entity == "installments" and not re.fullmatch(r"[1-9]\d*", value):
        problems.append(f"installments value {value!r} must be a positive integer")
    elif entity == "phone" and not re.fullmatch(r"\+55\d{10,11}", value):
        problems.append(f"phone value {value!r} must be E.164 (+55...)")
    elif entity == "email" and not re.fullmatch(r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}", value):
        problems.append(f"email value {value!r} must be a lowercased address")
    elif entity == "marketplace" and value not in CANONICAL_MARKETPLACES:
        problems.append(f"marketplace value {value!r} is not a canonical name")
    elif entity == "case_ref" and not re.fullmatch(r"INF-\d{4}-\d{6}", value):
        problems.append(f"case_ref value {value!r} must look like INF-2026-000123")
    if problems:
        return problems
    expected = expected_value(entity, text)
    if expected is None:
        problems.append(f"{entity} span {text!r} could not be normalized to check {value!r}")
    elif expected != value:
        problems.append(f"{entity} span {text!r}: value {value!r}, expected {expected!r}")
    return problems


# --------------------------------------------------------------------------- parsing

# [text]{"entity": ...}  |  [text](entity)  |  [text](entity:value)
_ANNOTATION = re.compile(r"\[(?P<text>[^\[\]]+)\](?:(?P<json>\{[^{}]*\})|\((?P<short>[^()]+)\))")


@dataclass
class Entity:
    entity: str
    text: str
    value: str | None


@dataclass
class Example:
    raw: str
    text: str
    intent: str
    file: str
    line: int
    entities: list[Entity] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_example(raw: str, intent: str, file: str, line: int) -> Example:
    ex = Example(raw=raw, text="", intent=intent, file=file, line=line)
    pieces: list[str] = []
    pos = 0
    for m in _ANNOTATION.finditer(raw):
        pieces.append(raw[pos : m.start()])
        span = m.group("text")
        pieces.append(span)
        pos = m.end()
        if m.group("json"):
            try:
                data = json.loads(m.group("json"))
            except json.JSONDecodeError as exc:
                ex.problems.append(f"bad JSON annotation {m.group('json')!r}: {exc}")
                continue
            name = data.get("entity")
            value = data.get("value")
            if not isinstance(name, str):
                ex.problems.append(f"annotation without entity name: {m.group(0)!r}")
                continue
            ex.entities.append(Entity(name, span, None if value is None else str(value)))
        else:
            short = m.group("short")
            name, _, value = short.partition(":")
            ex.entities.append(Entity(name.strip(), span, value.strip() or None))
    pieces.append(raw[pos:])
    ex.text = "".join(pieces)
    if re.search(r"[\[\]]", ex.text):
        ex.problems.append("unbalanced or unannotated [brackets]")
    for ent in ex.entities:
        ex.problems.extend(validate_entity(ent.entity, ent.text, ent.value))
    return ex


def parse_nlu_file(path: Path) -> tuple[list[Example], list[str]]:
    """Read one Rasa NLU file with PyYAML: `version: "3.1"`, `nlu:` made only of `- intent:`
    blocks whose `examples: |` are `- ` lines (line numbers from the YAML node marks)."""
    problems: list[str] = []
    examples: list[Example] = []
    rel = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        return [], [f"{rel}: invalid YAML: {exc}"]
    if not isinstance(root, yaml.MappingNode):
        return [], [f"{rel}: expected a mapping with version and nlu"]
    top = {key.value: (key, value) for key, value in root.value}
    for name, (key, _) in top.items():
        if name not in ("version", "nlu"):
            problems.append(f"{rel}:{key.start_mark.line + 1}: unexpected top-level {name!r}")
    version = top.get("version")
    if version is None:
        problems.append(f'{rel}: missing version: "3.1"')
    elif not (isinstance(version[1], yaml.ScalarNode) and version[1].value == "3.1"):
        problems.append(f'{rel}:{version[0].start_mark.line + 1}: expected version: "3.1"')
    nlu = top.get("nlu")
    if nlu is None or not isinstance(nlu[1], yaml.SequenceNode):
        problems.append(f"{rel}: missing top-level nlu:")
        return examples, problems
    intents_seen: list[str] = []
    for block in nlu[1].value:
        line = block.start_mark.line + 1
        if not isinstance(block, yaml.MappingNode):
            problems.append(f"{rel}:{line}: an nlu item must be a mapping")
            continue
        fields = {key.value: value for key, value in block.value}
        kind = next(iter(fields), "?")
        if "intent" not in fields:
            problems.append(f"{rel}:{line}: '{kind}' blocks are not allowed (only intent)")
            continue
        extra = sorted(set(fields) - {"intent", "examples"})
        if extra:
            problems.append(f"{rel}:{line}: unexpected keys {extra} in intent block")
        intent = str(fields["intent"].value)
        intents_seen.append(intent)
        body = fields.get("examples")
        if not isinstance(body, yaml.ScalarNode) or body.style != "|":
            problems.append(f"{rel}:{line}: intent {intent!r} needs `examples: |`")
            continue
        first = body.start_mark.line + 2  # the line after the `|` indicator, 1-based
        for offset, item in enumerate(str(body.value).splitlines()):
            number = first + offset
            if not item.strip():
                continue
            if not item.startswith("- "):
                problems.append(f"{rel}:{number}: example line must start with '- '")
                continue
            text = item[2:].strip()
            if not text:
                problems.append(f"{rel}:{number}: empty example")
                continue
            if text.startswith(("/", "#")):
                problems.append(f"{rel}:{number}: example starts with {text[0]!r}")
            examples.append(parse_example(text, intent, rel, number))
    for name, count in Counter(intents_seen).items():
        if count > 1:
            problems.append(f"{rel}: intent {name!r} declared {count} times in the same file")
    return examples, problems


# --------------------------------------------------------------------------- checks


def is_formal(text: str) -> bool:
    """Rough register heuristic for the report: e-mail register starts with a capital."""
    return text[:1].isupper() and not text.isupper()


def one_word_swap(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) >= 3 and sum(x != y for x, y in zip(a, b, strict=True)) == 1


def check_duplicates(train: list[Example], holdout: list[Example]) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    warnings: list[str] = []
    for split_name, split in (("train", train), ("holdout", holdout)):
        exact: dict[str, Example] = {}
        norm: dict[str, Example] = {}
        for ex in split:
            if ex.text in exact:
                first = exact[ex.text]
                errors.append(
                    f"{split_name}: exact duplicate"
                    f"{' with conflicting labels' if first.intent != ex.intent else ''}"
                    f" {ex.text!r} ({first.intent} {first.file}:"
                    f"{first.line} / {ex.intent} {ex.file}:{ex.line})"
                )
                continue
            exact[ex.text] = ex
            key = normalize_for_dup(ex.text)
            if key in norm:
                first = norm[key]
                kind = "conflicting labels" if first.intent != ex.intent else "near duplicate"
                errors.append(
                    f"{split_name}: {kind}: {first.text!r} ({first.intent} {first.file}:"
                    f"{first.line}) ~ {ex.text!r} ({ex.intent} {ex.file}:{ex.line})"
                )
                continue
            norm[key] = ex
    train_norm = {normalize_for_dup(ex.text): ex for ex in train}
    train_tokens = [(normalize_for_dup(ex.text).split(), ex) for ex in train]
    for ex in holdout:
        key = normalize_for_dup(ex.text)
        if key in train_norm:
            tr = train_norm[key]
            errors.append(
                f"holdout example {ex.text!r} ({ex.intent} {ex.file}:{ex.line}) is in the "
                f"training data as {tr.text!r} ({tr.intent} {tr.file}:{tr.line})"
            )
            continue
        tokens = key.split()
        for tr_tokens, tr in train_tokens:
            if tr.intent == ex.intent and one_word_swap(tokens, tr_tokens):
                errors.append(
                    f"holdout example {ex.text!r} ({ex.intent}) only swaps one word of "
                    f"training example {tr.text!r} ({tr.intent} {tr.file}:{tr.line})"
                )
                break
    return errors, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-dir", type=Path, default=REPO_ROOT / "data" / "nlu")
    parser.add_argument(
        "--holdout", type=Path, default=REPO_ROOT / "tests" / "data" / "nlu_test.yml"
    )
    parser.add_argument(
        "--oos",
        type=Path,
        default=REPO_ROOT / "tests" / "data" / "nlu_test_oos.yml",
        help="out-of-scope test slice: only out_of_scope examples, checked for leaks like the "
        "held-out set but without per-intent minimums (a missing file is skipped)",
    )
    parser.add_argument("--min-train", type=int, default=30)
    parser.add_argument("--min-holdout", type=int, default=10)
    parser.add_argument(
        "--domain", type=Path, default=DOMAIN_FILE, help="where the intents are declared"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only print problems")
    args = parser.parse_args(argv)
    contract_intents, _ = load_contract(args.domain)

    errors: list[str] = []
    train: list[Example] = []
    train_files = sorted(args.train_dir.glob("*.yml")) + sorted(args.train_dir.glob("*.yaml"))
    if not train_files:
        errors.append(f"no training files in {args.train_dir}")
    for path in train_files:
        exs, probs = parse_nlu_file(path)
        train.extend(exs)
        errors.extend(probs)
    holdout: list[Example] = []
    if args.holdout.is_file():
        holdout, probs = parse_nlu_file(args.holdout)
        errors.extend(probs)
    else:
        errors.append(f"missing holdout file {args.holdout}")
    oos: list[Example] = []
    if args.oos.is_file():
        oos, probs = parse_nlu_file(args.oos)
        errors.extend(probs)
        errors.extend(
            f"{ex.file}:{ex.line}: the out-of-scope slice holds only out_of_scope, not {ex.intent}"
            for ex in oos
            if ex.intent != "out_of_scope"
        )

    for ex in train + holdout + oos:
        for problem in ex.problems:
            errors.append(f"{ex.file}:{ex.line}: {problem}  <- {ex.raw}")

    train_counts = Counter(ex.intent for ex in train)
    holdout_counts = Counter(ex.intent for ex in holdout)
    formal_counts = Counter(ex.intent for ex in train if is_formal(ex.text))
    entity_counts: dict[str, Counter[str]] = defaultdict(Counter)
    for split_name, split in (("train", train), ("holdout", holdout)):
        for ex in split:
            for ent in ex.entities:
                entity_counts[ent.entity][split_name] += 1

    unknown = sorted((set(train_counts) | set(holdout_counts)) - set(contract_intents))
    for name in unknown:
        errors.append(f"intent {name!r} is not declared in {args.domain.name}")
    for name in contract_intents:
        if train_counts[name] < args.min_train:
            errors.append(
                f"intent {name}: {train_counts[name]} train examples (< {args.min_train})"
            )
        if holdout_counts[name] < args.min_holdout:
            errors.append(
                f"intent {name}: {holdout_counts[name]} holdout examples (< {args.min_holdout})"
            )

    dup_errors, warnings = check_duplicates(train, holdout + oos)
    errors.extend(dup_errors)

    if not args.quiet:
        print(f"{'intent':<26}{'train':>7}{'holdout':>9}{'formal%':>9}")
        for name in list(contract_intents) + unknown:
            n = train_counts[name]
            formal = f"{100 * formal_counts[name] / n:.0f}" if n else "-"
            print(f"{name:<26}{n:>7}{holdout_counts[name]:>9}{formal:>9}")
        total_formal = 100 * sum(formal_counts.values()) / max(len(train), 1)
        print(f"{'TOTAL':<26}{len(train):>7}{len(holdout):>9}{total_formal:>9.0f}")
        print()
        print(f"{'entity':<26}{'train':>7}{'holdout':>9}")
        for name in CONTRACT_ENTITIES:
            c = entity_counts.get(name, Counter())
            print(f"{name:<26}{c['train']:>7}{c['holdout']:>9}")
        print()
    for w in warnings:
        print(f"WARNING: {w}")
    for e in errors:
        print(f"ERROR: {e}")
    if errors:
        print(f"\n{len(errors)} problem(s) found.")
        return 1
    if not args.quiet:
        print("NLU data OK.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
