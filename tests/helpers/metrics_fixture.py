"""The metrics fixture: twelve cases in October 2026 (plus one in November) written as the
events the services emit, with the answers computed by hand in tests/integration/
test_metrics_figures.py.

Calendar: America/Sao_Paulo (UTC-3), Monday-Friday 09:00-18:00; 2026-10-12 (Monday) is a
national holiday (Nossa Senhora Aparecida); 10-11 and 17-18 October are a weekend.

    C1  A  WhatsApp  bot-only agreement (1600), paid 5 Oct
    C2  A  WhatsApp  handoff Fri 17:31, claimed by Ana Mon 09:30, Ana agrees 1500
    C3  A  e-mail    notice bounced (DSN), never answered
    C4  B  e-mail    answers on a weekend, handoff Sunday, claimed by Bruno after the holiday
    C5  B  both      engages on WhatsApp then e-mail, bot-only agreement by e-mail, listing
                     removed, paid 20 Oct
    C6  A  WhatsApp  bot-only agreement, paid, closed, reopened
    C7  B  WhatsApp  opt-out (handoff never claimed)
    C8  A  WhatsApp  template undelivered, no answer
    C9  A  e-mail    no answer
    C10 B  WhatsApp  Bruno takes it straight from the bot, moves it to ACORDO_PROPOSTO, signs 800
    C11 A  e-mail    handoff Friday evening, Ana claims Monday and hands back without replying
    C12 B  e-mail    bot-only agreement 900, unpaid
    C13 A  WhatsApp  notified in November (outside October)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Role
from api.cases.service import create_case
from api.events import emit
from api.events import kinds as ev
from tests.factories import make_analyst, make_brand, make_infringer

SP = ZoneInfo("America/Sao_Paulo")
SYNTHETIC = 900_000_000
A = ev.EventActorKind


def at(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 10) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=SP)


@dataclass
class Fixture:
    brand_a: int = 0
    brand_b: int = 0
    ana: int = 0
    bruno: int = 0
    cases: dict[str, int] = field(default_factory=dict)


class Script:
    """Collects events with their times; `write` emits them in time order."""

    def __init__(self, fixture: Fixture) -> None:
        self.fx = fixture
        self.items: list[tuple[dt.datetime, ev.DomainEvent]] = []
        self._mid = 1_900_000_000

    # Ids far above any real row, derived from the case's id: the fixture can share a
    # database with other tests' conversations and messages without mixing with them.
    def conv(self, case: str, channel: str) -> int:
        return SYNTHETIC + self.fx.cases[case] * 10 + (1 if channel == "whatsapp" else 2)

    def message(self, case: str, mid: int) -> int:
        return SYNTHETIC + self.fx.cases[case] * 10_000 + mid % 10_000

    def env(
        self,
        case: str,
        when: dt.datetime,
        actor: ev.EventActorKind,
        channel: str | None = None,
        actor_id: int | None = None,
    ) -> dict[str, object]:
        return {
            "case_id": self.fx.cases[case],
            "conversation_id": self.conv(case, channel) if channel else None,
            "channel": channel,
            "actor_kind": actor,
            "actor_id": actor_id,
            "occurred_at": when,
        }

    def add(self, when: dt.datetime, event: ev.DomainEvent) -> None:
        self.items.append((when, event))

    def status(self, case: str, to: str, when: dt.datetime, analyst: int | None = None) -> None:
        actor = A.ANALYST if analyst else A.SYSTEM
        self.add(
            when,
            ev.CaseStatusChanged(
                **self.env(case, when, actor, actor_id=analyst), from_status="?", to_status=to
            ),
        )

    def sent(
        self, case: str, ch: str, mid: int, when: dt.datetime, analyst: int | None = None,
        author: str = "bot",
    ) -> None:  # fmt: skip
        author = "analyst" if analyst else author
        actor = {"analyst": A.ANALYST, "bot": A.BOT}.get(author, A.SYSTEM)
        self.add(
            when,
            ev.MessageSent(
                **self.env(case, when, actor, ch, analyst),
                message_id=self.message(case, mid),
                author_kind=author,
            ),
        )

    def status_of(self, case: str, ch: str, mid: int, when: dt.datetime, status: str) -> None:
        model = ev.MessageFailed if status in ("failed", "undelivered") else ev.MessageDelivered
        self.add(
            when,
            model(
                **self.env(case, when, A.SYSTEM, ch),
                message_id=self.message(case, mid),
                status=status,
            ),
        )

    def received(self, case: str, ch: str, when: dt.datetime, answerable: bool = True) -> None:
        self._mid += 1
        self.add(
            when,
            ev.MessageReceived(
                **self.env(case, when, A.INFRINGER, ch), message_id=self._mid,
                answerable=answerable,
            ),
        )  # fmt: skip

    def handoff(self, case: str, ch: str, when: dt.datetime, reason: str) -> None:
        self.add(when, ev.HandoffRequested(**self.env(case, when, A.BOT, ch), reason=reason))

    def claim(self, case: str, ch: str, when: dt.datetime, analyst: int) -> None:
        self.add(
            when,
            ev.HandoffClaimed(**self.env(case, when, A.ANALYST, ch, analyst), analyst_id=analyst),
        )

    def release(self, case: str, ch: str, when: dt.datetime, analyst: int) -> None:
        self.add(when, ev.HandoffReleased(**self.env(case, when, A.ANALYST, ch, analyst)))

    def agreement(
        self, case: str, ch: str, when: dt.datetime, amount: str, installments: int,
        analyst: int | None = None,
    ) -> None:  # fmt: skip
        actor = A.ANALYST if analyst else A.BOT
        self.add(
            when,
            ev.AgreementProposed(
                **self.env(case, when, actor, ch, analyst),
                amount=Decimal(amount),
                installments=installments,
            ),
        )

    def accepted(
        self, case: str, when: dt.datetime, amount: str, installments: int, analyst: int
    ) -> None:
        self.status(case, "ACORDO_ASSINADO", when, analyst)
        self.add(
            when,
            ev.AgreementAccepted(
                **self.env(case, when, A.ANALYST, actor_id=analyst),
                amount=Decimal(amount),
                installments=installments,
            ),
        )

    def paid(self, case: str, when: dt.datetime, amount: str, analyst: int) -> None:
        self.status(case, "PAGO", when, analyst)
        self.add(
            when,
            ev.PaymentConfirmed(
                **self.env(case, when, A.ANALYST, actor_id=analyst), amount=Decimal(amount)
            ),
        )

    def opt_out(self, case: str, ch: str, when: dt.datetime) -> None:
        self.add(
            when,
            ev.ContactOptedOut(
                **self.env(case, when, A.INFRINGER, ch), contact_id=1, reason="pare"
            ),
        )

    def alert(self, case: str, ch: str, when: dt.datetime, name: str) -> None:
        self.add(when, ev.AlertRaised(**self.env(case, when, A.RULE, ch), alert=name))

    def listing(self, case: str, when: dt.datetime, to: str) -> None:
        self.add(
            when,
            ev.ListingStatusChanged(
                **self.env(case, when, A.ANALYST, actor_id=self.fx.bruno),
                listing_id=1,
                from_status="active",
                to_status=to,
            ),
        )

    def write(self, session: AsyncSession) -> None:
        for _, event in sorted(self.items, key=lambda item: item[0]):
            emit(session, event)


def story(s: Script) -> None:
    fx = s.fx
    ana, bruno = fx.ana, fx.bruno
    W, E = "whatsapp", "email"
    # C1: bot-only agreement on WhatsApp, paid.
    s.status("C1", "NOTIFICADO", at(1, 10))
    s.sent("C1", W, 101, at(1, 10))
    s.status_of("C1", W, 101, at(1, 10, 1), "delivered")
    s.status_of("C1", W, 101, at(1, 10, 5), "read")
    s.received("C1", W, at(1, 10, 30))
    s.status("C1", "EM_ATENDIMENTO", at(1, 10, 30))
    s.sent("C1", W, 102, at(1, 10, 31))
    s.status_of("C1", W, 102, at(1, 10, 32), "delivered")
    s.status_of("C1", W, 102, at(1, 10, 40), "read")
    s.received("C1", W, at(1, 11))
    s.sent("C1", W, 103, at(1, 11, 2))
    s.status_of("C1", W, 103, at(1, 11, 2, 30), "delivered")
    s.status("C1", "EM_NEGOCIACAO", at(1, 11, 3))
    s.status("C1", "ACORDO_PROPOSTO", at(1, 11, 3))
    s.agreement("C1", W, at(1, 11, 3), "1600.00", 1)
    s.accepted("C1", at(2, 9), "1600.00", 1, ana)
    s.status("C1", "AGUARDANDO_PAGAMENTO", at(2, 9), ana)
    s.paid("C1", at(5, 10), "1600.00", ana)
    # C2: handoff on a Friday evening, claimed Monday.
    s.status("C2", "NOTIFICADO", at(2, 17))
    s.sent("C2", W, 201, at(2, 17))
    s.status_of("C2", W, 201, at(2, 17, 1), "delivered")
    s.received("C2", W, at(2, 17, 30))
    s.status("C2", "EM_ATENDIMENTO", at(2, 17, 30))
    s.sent("C2", W, 202, at(2, 17, 31))
    s.status_of("C2", W, 202, at(2, 17, 32), "delivered")
    s.handoff("C2", W, at(2, 17, 31), "pedido do infrator")
    s.claim("C2", W, at(5, 9, 30), ana)
    s.alert("C2", W, at(5, 9, 45), "handoff_first_response")
    s.alert("C2", W, at(5, 9, 46), "infringer_replied")
    s.sent("C2", W, 203, at(5, 10), analyst=ana)
    s.status_of("C2", W, 203, at(5, 10, 1), "delivered")
    s.status_of("C2", W, 203, at(5, 10, 2), "read")
    s.received("C2", W, at(5, 10, 10))
    s.sent("C2", W, 204, at(5, 10, 40), analyst=ana)
    s.status("C2", "EM_NEGOCIACAO", at(5, 10, 45), ana)
    s.status("C2", "ACORDO_PROPOSTO", at(5, 10, 45), ana)
    s.agreement("C2", W, at(5, 10, 45), "1500.00", 3, analyst=ana)
    # C3: the notice bounces.
    s.status("C3", "NOTIFICADO", at(6, 9))
    s.sent("C3", E, 301, at(6, 9), author="system")
    s.status_of("C3", E, 301, at(6, 9, 0, 5), "sent")
    s.received("C3", E, at(6, 9, 10), answerable=False)
    s.status_of("C3", E, 301, at(6, 9, 10), "failed")
    # C4: e-mail answered on a weekend; handoff on Sunday; claimed after the holiday.
    s.status("C4", "NOTIFICADO", at(9, 15))
    s.sent("C4", E, 401, at(9, 15), author="system")
    s.status_of("C4", E, 401, at(9, 15, 0, 5), "sent")
    s.received("C4", E, at(10, 11))
    s.status("C4", "EM_ATENDIMENTO", at(10, 11))
    s.sent("C4", E, 402, at(10, 11, 5))
    s.status_of("C4", E, 402, at(10, 11, 5, 5), "sent")
    s.received("C4", E, at(11, 20))
    s.handoff("C4", E, at(11, 20), "infrator informou advogado/jurídico")
    s.status("C4", "EM_CONTESTACAO", at(11, 20))
    s.sent("C4", E, 403, at(11, 20, 1))
    s.status_of("C4", E, 403, at(11, 20, 1, 5), "sent")
    s.claim("C4", E, at(13, 9, 15), bruno)
    s.sent("C4", E, 404, at(13, 11), analyst=bruno)
    s.status_of("C4", E, 404, at(13, 11, 0, 5), "sent")
    # C5: WhatsApp then e-mail; the bot agrees by e-mail; listing removed; paid.
    s.status("C5", "NOTIFICADO", at(6, 10))
    s.sent("C5", E, 501, at(6, 10), author="system")
    s.status_of("C5", E, 501, at(6, 10, 0, 5), "sent")
    s.sent("C5", W, 502, at(6, 10, 5))
    s.status_of("C5", W, 502, at(6, 10, 6), "delivered")
    s.status_of("C5", W, 502, at(6, 10, 7), "read")
    s.received("C5", W, at(6, 11))
    s.status("C5", "EM_ATENDIMENTO", at(6, 11))
    s.sent("C5", W, 503, at(6, 11, 0, 30))
    s.status_of("C5", W, 503, at(6, 11, 1), "delivered")
    s.received("C5", E, at(7, 14))
    s.sent("C5", E, 504, at(7, 14, 2))
    s.status_of("C5", E, 504, at(7, 14, 2, 5), "sent")
    s.status("C5", "EM_NEGOCIACAO", at(7, 14, 3))
    s.status("C5", "ACORDO_PROPOSTO", at(7, 14, 3))
    s.agreement("C5", E, at(7, 14, 3), "1000.00", 2)
    s.listing("C5", at(8, 10), "removed")
    s.accepted("C5", at(8, 11), "1000.00", 2, bruno)
    s.status("C5", "AGUARDANDO_PAGAMENTO", at(8, 11), bruno)
    s.paid("C5", at(20, 10), "1000.00", bruno)
    # C6: bot-only agreement, paid, closed, reopened.
    s.status("C6", "NOTIFICADO", at(5, 14))
    s.sent("C6", W, 601, at(5, 14))
    s.status_of("C6", W, 601, at(5, 14, 1), "delivered")
    s.received("C6", W, at(5, 14, 30))
    s.status("C6", "EM_ATENDIMENTO", at(5, 14, 30))
    s.sent("C6", W, 602, at(5, 14, 31))
    s.status("C6", "EM_NEGOCIACAO", at(5, 14, 40))
    s.status("C6", "ACORDO_PROPOSTO", at(5, 14, 40))
    s.agreement("C6", W, at(5, 14, 40), "2000.00", 1)
    s.accepted("C6", at(5, 15), "2000.00", 1, ana)
    s.status("C6", "AGUARDANDO_PAGAMENTO", at(5, 15), ana)
    s.paid("C6", at(6, 12), "2000.00", ana)
    s.status("C6", "ENCERRADO", at(7, 10), ana)
    s.status("C6", "REABERTO", at(15, 10), ana)
    # C7: opt-out.
    s.status("C7", "NOTIFICADO", at(7, 10))
    s.sent("C7", W, 701, at(7, 10))
    s.status_of("C7", W, 701, at(7, 10, 1), "delivered")
    s.received("C7", W, at(7, 10, 10))
    s.status("C7", "EM_ATENDIMENTO", at(7, 10, 10))
    s.opt_out("C7", W, at(7, 10, 10))
    s.sent("C7", W, 702, at(7, 10, 10, 30))
    s.status_of("C7", W, 702, at(7, 10, 11), "delivered")
    s.handoff("C7", W, at(7, 10, 10, 30), "opt-out: revisar contato")
    # C8: undelivered template, no answer.
    s.status("C8", "NOTIFICADO", at(8, 10))
    s.sent("C8", W, 801, at(8, 10))
    s.status_of("C8", W, 801, at(8, 10, 0, 5), "sent")
    s.status_of("C8", W, 801, at(8, 10, 1), "undelivered")
    # C9: e-mail, no answer.
    s.status("C9", "NOTIFICADO", at(8, 11))
    s.sent("C9", E, 901, at(8, 11), author="system")
    s.status_of("C9", E, 901, at(8, 11, 0, 5), "sent")
    # C10: Bruno takes the conversation from the bot and closes the deal.
    s.status("C10", "NOTIFICADO", at(14, 10))
    s.sent("C10", W, 1001, at(14, 10))
    s.status_of("C10", W, 1001, at(14, 10, 2), "read")
    s.received("C10", W, at(14, 10, 20))
    s.status("C10", "EM_ATENDIMENTO", at(14, 10, 20))
    s.sent("C10", W, 1002, at(14, 10, 21))
    s.status_of("C10", W, 1002, at(14, 10, 22), "delivered")
    s.claim("C10", W, at(14, 11), bruno)
    s.received("C10", W, at(14, 11, 5))
    s.sent("C10", W, 1003, at(14, 11, 30), analyst=bruno)
    s.status_of("C10", W, 1003, at(14, 11, 31), "delivered")
    s.status("C10", "EM_NEGOCIACAO", at(14, 12), bruno)
    s.status("C10", "ACORDO_PROPOSTO", at(14, 12), bruno)
    s.accepted("C10", at(15, 10), "800.00", 1, bruno)
    # C11: handoff Friday evening, claimed Monday, handed back without a reply.
    s.status("C11", "NOTIFICADO", at(16, 16))
    s.sent("C11", E, 1101, at(16, 16), author="system")
    s.status_of("C11", E, 1101, at(16, 16, 0, 5), "sent")
    s.received("C11", E, at(16, 17))
    s.status("C11", "EM_ATENDIMENTO", at(16, 17))
    s.sent("C11", E, 1102, at(16, 17, 0, 20))
    s.status_of("C11", E, 1102, at(16, 17, 0, 25), "sent")
    s.received("C11", E, at(16, 17, 50))
    s.handoff("C11", E, at(16, 17, 50), "contestação")
    s.claim("C11", E, at(19, 9, 10), ana)
    s.release("C11", E, at(19, 9, 20), ana)
    # C12: bot-only agreement by e-mail, unpaid.
    s.status("C12", "NOTIFICADO", at(20, 10))
    s.sent("C12", E, 1201, at(20, 10), author="system")
    s.status_of("C12", E, 1201, at(20, 10, 0, 5), "sent")
    s.received("C12", E, at(20, 12))
    s.status("C12", "EM_ATENDIMENTO", at(20, 12))
    s.sent("C12", E, 1202, at(20, 12, 1))
    s.status("C12", "EM_NEGOCIACAO", at(20, 12, 2))
    s.status("C12", "ACORDO_PROPOSTO", at(20, 12, 2))
    s.agreement("C12", E, at(20, 12, 2), "900.00", 3)
    # C13: November.
    s.status("C13", "NOTIFICADO", at(3, 10, month=11))
    s.sent("C13", W, 1301, at(3, 10, month=11))


BRAND_OF = {
    "C1": "A", "C2": "A", "C3": "A", "C4": "B", "C5": "B", "C6": "A", "C7": "B", "C8": "A",
    "C9": "A", "C10": "B", "C11": "A", "C12": "B", "C13": "A",
}  # fmt: skip
AMOUNT_OF = {"A": Decimal("2000.00"), "B": Decimal("1000.00")}


async def seed_metrics_fixture(
    session: AsyncSession, *, tag: str = "", extra: Callable[[Script], None] | None = None
) -> Fixture:
    """Brands, analysts and cases (rows), then the events of `story` in one transaction;
    `tag` makes the brand names unique when several tests seed one database."""
    fx = Fixture()
    brand_a = await make_brand(session, name=f"Marca Alfa{tag}", base_amount=Decimal("2000.00"))
    brand_b = await make_brand(
        session, name=f"Marca Beta{tag}", base_amount=Decimal("1000.00"), floor_amount=None
    )
    fx.brand_a, fx.brand_b = brand_a.id, brand_b.id
    ana = await make_analyst(session)
    ana.name = "Ana Souza"
    bruno = await make_analyst(session)
    bruno.name = "Bruno Lima"
    await make_analyst(session, role=Role.SUPERVISOR)
    fx.ana, fx.bruno = ana.id, bruno.id
    for name, brand in BRAND_OF.items():
        infringer = await make_infringer(session, name=f"Infrator {name}")
        case = await create_case(
            session,
            brand_id=fx.brand_a if brand == "A" else fx.brand_b,
            infringer_id=infringer.id,
            claimed_amount=AMOUNT_OF[brand],
        )
        fx.cases[name] = case.id
    await session.flush()
    script = Script(fx)
    story(script)
    if extra is not None:
        extra(script)
    script.write(session)
    await session.flush()
    return fx
