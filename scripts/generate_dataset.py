"""Fill a migrated PostgreSQL database with a realistic volume of cases, for the scale benchmark.

    .venv/bin/python scripts/generate_dataset.py --database-url postgresql://postgres@127.0.0.1/db \\
        --cases 100000

For N cases it writes N infringers, 3N contact points (a phone, an e-mail address and a second
phone or an e-mail domain; about 2 % of the third ones unmatched), a WhatsApp conversation per
case and an e-mail one for about a third of them (some e-mail only, with long threads), 10N
messages (inbound and outbound, NLU readings, delivery statuses), about 10 % of conversations
handed off to a person, payment requests with installments for the cases in payment, and the
timeline: one entry per message plus status changes, handoffs and payments. Rows go in with COPY
(asyncpg), in chunks of cases, one transaction per chunk. The database must already be migrated
(`tratativa db upgrade`); the rows are added beside whatever is there. Prints rows/s per table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import secrets
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

UTC = dt.UTC
STATUSES = (
    ("NOTIFICADO", 20),
    ("SEM_RESPOSTA", 15),
    ("EM_ATENDIMENTO", 15),
    ("EM_NEGOCIACAO", 15),
    ("EM_CONTESTACAO", 3),
    ("ACORDO_PROPOSTO", 5),
    ("AGUARDANDO_PAGAMENTO", 8),
    ("PAGO", 7),
    ("ENCERRADO", 8),
    ("DESCARTADO", 2),
    ("ESCALADO_JURIDICO", 2),
)
PAYING = {"AGUARDANDO_PAGAMENTO", "PAGO"}
INBOUND = (
    ("oi, recebi uma notificação de vocês", "greet"),
    ("do que se trata?", "ask_what_is_this"),
    ("qual o valor?", "ask_amount"),
    ("posso parcelar em 3x?", "ask_installments"),
    ("já tirei o anúncio do ar", "claim_removed"),
    ("como eu sei que isso não é golpe?", "ask_legitimacy"),
    ("segue o comprovante", "send_receipt"),
    ("quero falar com uma pessoa", "request_human"),
)
OUTBOUND = (
    "Olá! Sou o assistente da Tratativa, em nome da marca.",
    "O anúncio usa a marca sem autorização. Podemos resolver por acordo.",
    "O valor é R$ 1.500,00, em até 3 parcelas.",
    "Enviei o link de pagamento. Qualquer dúvida, estou aqui.",
    "Vou passar a conversa para um analista.",
)
MARKETPLACES = ("mercadolivre", "shopee", "olx", "instagram", "amazon")
CHUNK = 2000  # cases per transaction


def pg_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    if not url.startswith(("postgresql://", "postgres://")):
        raise SystemExit("--database-url must be a PostgreSQL URL")
    return url


class Ids:
    """The next free id per table, read once, then handed out locally (sequences set at the end)."""

    def __init__(self, start: dict[str, int]) -> None:
        self.next = dict(start)

    def take(self, table: str) -> int:
        value = self.next[table]
        self.next[table] = value + 1
        return value


TABLES = {
    "infringers": ("id", "created_at", "kind", "name"),
    "contact_points": ("id", "created_at", "kind", "value", "infringer_id"),
    "cases": (
        "id",
        "created_at",
        "reference",
        "brand_id",
        "infringer_id",
        "status",
        "status_changed_at",
        "claimed_amount",
        "agreed_amount",
        "agreed_installments",
        "notice_sent_at",
        "response_deadline",
        "notice_token",
        "updated_at",
    ),
    "listings": ("id", "created_at", "case_id", "url", "marketplace", "status"),
    "conversations": (
        "id",
        "created_at",
        "case_id",
        "contact_point_id",
        "channel",
        "address",
        "holder",
        "handoff_reason",
        "handoff_at",
        "last_inbound_at",
        "last_outbound_at",
    ),
    "messages": (
        "id",
        "created_at",
        "conversation_id",
        "case_id",
        "direction",
        "channel",
        "author_kind",
        "text",
        "subject",
        "provider_id",
        "delivery_status",
        "intent",
        "intent_confidence",
        "handled_at",
    ),
    "timeline_entries": (
        "id",
        "created_at",
        "case_id",
        "conversation_id",
        "message_id",
        "kind",
        "actor_kind",
        "summary",
    ),
    "payment_requests": (
        "id",
        "created_at",
        "case_id",
        "public_token",
        "total_amount",
        "installments_count",
        "provider",
    ),
    "installments": (
        "id",
        "created_at",
        "payment_request_id",
        "number",
        "amount",
        "due_date",
        "txid",
        "pix_payload",
        "boleto_barcode",
        "boleto_line",
        "status",
        "paid_at",
    ),
}


def message_counts(cases: int, rng: random.Random) -> list[int]:
    """Ten messages per case on average, exactly 10N in all, spread 2..18 per case."""
    counts = []
    for i in range(0, cases, 2):
        d = rng.randint(0, 8)
        counts.extend([10 + d, 10 - d] if i + 1 < cases else [10])
    return counts


def build_chunk(
    first: int,
    count: int,
    counts: Sequence[int],
    brands: Sequence[int],
    ids: Ids,
    run: str,
    rng: random.Random,
) -> dict[str, list[tuple[Any, ...]]]:
    rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    now = dt.datetime.now(UTC)
    statuses = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    for n in range(first, first + count):
        opened = now - dt.timedelta(days=rng.uniform(1, 3 * 365))
        company = rng.random() < 0.3
        infringer = ids.take("infringers")
        name = f"Loja Bench {n}" if company else f"Pessoa Bench {n}"
        rows["infringers"].append((infringer, opened, "company" if company else "person", name))
        phone = ids.take("contact_points")
        email = ids.take("contact_points")
        third = ids.take("contact_points")
        tag = f"{run}{n}"
        rows["contact_points"] += [
            (
                phone,
                opened,
                "phone",
                f"+5511{900_000_000 + phone % 100_000_000}",
                infringer,
            ),
            (email, opened, "email", f"vendas.{tag}@exemplo.com.br", infringer),
            (
                third,
                opened,
                *(
                    ("phone", f"+5521{900_000_000 + third % 100_000_000}")
                    if rng.random() < 0.5
                    else ("email_domain", f"loja{tag}.com.br")
                ),
                None if rng.random() < 0.02 else infringer,
            ),
        ]
        case = ids.take("cases")
        status = rng.choices(statuses, weights)[0]
        claimed = Decimal(rng.choice((800, 1200, 1500, 2500, 5000)))
        agreed = claimed * Decimal("0.8") if status in PAYING else None
        notice = opened + dt.timedelta(hours=rng.uniform(1, 48))
        rows["cases"].append(
            (
                case,
                opened,
                f"B{run}-{n:07d}"[:20],
                rng.choice(brands),
                infringer,
                status,
                notice + dt.timedelta(days=rng.uniform(0, 20)),
                claimed,
                agreed,
                3 if agreed else None,
                notice,
                (notice + dt.timedelta(days=10)).date(),
                secrets.token_urlsafe(24),
                now,
            )
        )
        for _ in range(rng.choice((1, 1, 1, 2))):
            rows["listings"].append(
                (
                    ids.take("listings"),
                    opened,
                    case,
                    f"https://{rng.choice(MARKETPLACES)}.example/item/{tag}-{rng.randrange(10**6)}",
                    rng.choice(MARKETPLACES),
                    rng.choice(("active", "active", "removed", "removal_pending")),
                )
            )
        rows["timeline_entries"].append(
            (
                ids.take("timeline_entries"),
                notice,
                case,
                None,
                None,
                "status_change",
                "system",
                f"Status: {status}",
            )
        )
        # Channels: WhatsApp for most, e-mail beside it for a third, e-mail only for 5 %.
        total = counts[n - first]
        email_only = rng.random() < 0.05
        with_email = email_only or rng.random() < 0.3
        split = (
            {"email": total}
            if email_only
            else (
                {"whatsapp": total - total * 6 // 10, "email": total * 6 // 10}
                if with_email
                else {"whatsapp": total}
            )
        )
        at = notice
        for channel, messages in split.items():
            if messages == 0:
                continue
            conversation = ids.take("conversations")
            handoff = rng.random() < 0.1
            address = rows["contact_points"][-3 if channel == "whatsapp" else -2][3]
            contact = phone if channel == "whatsapp" else email
            first_at = at
            last_in = last_out = None
            handoff_at = None
            for k in range(messages):
                at = at + dt.timedelta(minutes=rng.uniform(0.1, 600 if channel == "email" else 30))
                message = ids.take("messages")
                inbound = k % 2 == 1 or (channel == "email" and k % 3 == 2)
                if inbound:
                    text, intent = rng.choice(INBOUND)
                    last_in = at
                    row = (
                        message,
                        at,
                        conversation,
                        case,
                        "inbound",
                        channel,
                        "infringer",
                        text,
                        "Re: Notificação" if channel == "email" else None,
                        f"{run}-{message}",
                        "received",
                        intent,
                        round(rng.uniform(0.5, 0.99), 3),
                        at + dt.timedelta(seconds=1),
                    )
                    actor, summary = "infringer", text
                else:
                    text = rng.choice(OUTBOUND)
                    last_out = at
                    author = "analyst" if handoff and k > messages // 2 else "bot"
                    row = (
                        message,
                        at,
                        conversation,
                        case,
                        "outbound",
                        channel,
                        "system" if author == "analyst" else author,
                        text,
                        "Notificação extrajudicial" if channel == "email" else None,
                        f"{run}-{message}",
                        rng.choice(("delivered", "read", "sent")),
                        None,
                        None,
                        None,
                    )
                    actor, summary = ("system" if author == "analyst" else "bot"), text
                rows["messages"].append(row)
                rows["timeline_entries"].append(
                    (
                        ids.take("timeline_entries"),
                        at,
                        case,
                        conversation,
                        message,
                        "message",
                        actor,
                        summary[:200],
                    )
                )
                if handoff and handoff_at is None and k == messages // 2:
                    handoff_at = at
                    rows["timeline_entries"].append(
                        (
                            ids.take("timeline_entries"),
                            at,
                            case,
                            conversation,
                            None,
                            "handoff",
                            "bot",
                            "Conversa passada para um analista",
                        )
                    )
            rows["conversations"].append(
                (
                    conversation,
                    first_at,
                    case,
                    contact,
                    channel,
                    address,
                    "waiting_human" if handoff_at else "bot",
                    "pedido do infrator" if handoff_at else None,
                    handoff_at,
                    last_in,
                    last_out,
                )
            )
        if status in PAYING:
            request = ids.take("payment_requests")
            rows["payment_requests"].append(
                (request, at, case, secrets.token_urlsafe(24), agreed, 3, "fake")
            )
            for number in range(1, 4):
                paid = status == "PAGO" or (number == 1 and rng.random() < 0.5)
                due = (at + dt.timedelta(days=30 * (number - 1) + 3)).date()
                txid = f"B{ids.next['installments']:024d}"[-25:]
                rows["installments"].append(
                    (
                        ids.take("installments"),
                        at,
                        request,
                        number,
                        (agreed or claimed) / 3,
                        due,
                        txid,
                        f"000201pix{txid}",
                        f"{rng.randrange(10**44):044d}",
                        f"{rng.randrange(10**47):047d}",
                        "paid" if paid else "open",
                        at + dt.timedelta(days=number) if paid else None,
                    )
                )
            rows["timeline_entries"].append(
                (
                    ids.take("timeline_entries"),
                    at,
                    case,
                    None,
                    None,
                    "system",
                    "system",
                    "Link de pagamento enviado",
                )
            )
    return rows


async def generate(args: argparse.Namespace) -> int:
    conn = await asyncpg.connect(pg_url(args.database_url))
    try:
        missing = [
            t for t in TABLES if not await conn.fetchval("SELECT to_regclass($1)", f"public.{t}")
        ]
        if missing:
            print(
                f"not migrated (run `tratativa db upgrade`): missing {', '.join(missing)}",
                file=sys.stderr,
            )
            return 2
        brands = [r["id"] for r in await conn.fetch("SELECT id FROM brands ORDER BY id")]
        if not brands:
            for b in range(5):
                brands.append(
                    await conn.fetchval(
                        "INSERT INTO brands (created_at, name, base_amount, max_installments,"
                        " min_installment_amount, response_days, payment_instructions)"
                        " VALUES (now(), $1, 1500, 3, 100, 10, '') RETURNING id",
                        f"Marca Bench {b}",
                    )
                )
        start = {
            t: int(await conn.fetchval(f"SELECT coalesce(max(id), 0) + 1 FROM {t}")) for t in TABLES
        }
        ids = Ids(start)
        rng = random.Random(args.seed)
        run = secrets.token_hex(2)
        counts = message_counts(args.cases, rng)
        written: dict[str, int] = defaultdict(int)
        started = time.perf_counter()
        for first in range(0, args.cases, CHUNK):
            count = min(CHUNK, args.cases - first)
            rows = build_chunk(first, count, counts[first : first + count], brands, ids, run, rng)
            async with conn.transaction():
                for table, columns in TABLES.items():
                    if rows[table]:
                        await conn.copy_records_to_table(
                            table, records=rows[table], columns=columns
                        )
                        written[table] += len(rows[table])
            done = first + count
            if done % (CHUNK * 10) == 0 or done == args.cases:
                print(f"  {done} cases ({time.perf_counter() - started:.0f} s)", flush=True)
        for table in TABLES:
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
        await conn.execute("ANALYZE")
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    total = sum(written.values())
    for table in TABLES:
        print(f"{table:<18}{written[table]:>10} rows")
    print(f"generate_dataset: {total} rows in {seconds:.1f} s, {total / seconds:.0f} rows/s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="a migrated PostgreSQL database")
    parser.add_argument("--cases", type=int, default=1000, help="100000 for the issue's scale")
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    if not 1 <= args.cases <= 1_000_000:
        parser.error("--cases must be between 1 and 1000000")
    return asyncio.run(generate(args))


if __name__ == "__main__":
    sys.exit(main())
