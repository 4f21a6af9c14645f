"""The bot's flows: each reads the case from the database, records what happened, and answers.

Every amount, date and listing comes from the case and the brand's policy; anything the policy
does not cover is handed to a person.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from api.assistant.context import BotContext, brl, load_case
from api.assistant.replies import BotReply, Say
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case, Listing, ListingStatus
from api.cases.service import do_change_status, do_set_listing_status, get_case_by_reference
from api.contacts.models import ContactPoint, Infringer
from api.conversations.service import do_link_conversation
from api.db import utcnow
from api.events import EventActorKind, about, emit
from api.events import kinds as ev
from api.handoff.business_hours import BusinessHours
from api.handoff.service import do_request_handoff
from api.identifiers.media import media_only_labels
from api.negotiation.policy import (
    Offer,
    Verdict,
    check_terms,
    evaluate_counteroffer,
    evaluate_installments,
    max_installments_for,
    opening_offer,
)
from api.payments.models import PaymentRequest
from api.payments.provider import get_payment_provider
from api.payments.service import (
    do_issue_payment_request,
    get_current_payment_request,
    has_payments,
    installments_of,
    states_terms,
)
from api.timeline.models import EntryKind
from api.timeline.service import create_entry

S = CaseStatus
# Statuses in which the infringer has answered and the case is still being worked.
_ENGAGE_FROM = (S.NOTIFICADO, S.SEM_RESPOSTA, S.REABERTO)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# ----------------------------------------------------------------------------- helpers


async def _note(ctx: BotContext, summary: str, **data: object) -> None:
    if ctx.case is None and ctx.conversation is None:
        return
    await create_entry(
        ctx.session,
        kind=EntryKind.NOTE,
        actor=ctx.actor,
        case_id=ctx.case.id if ctx.case else None,
        conversation_id=ctx.conversation.id if ctx.conversation else None,
        summary=summary,
        data={"text": ctx.turn.text, "intent": ctx.turn.intent, **data},
    )


async def _move(ctx: BotContext, *path: CaseStatus, reason: str) -> None:
    """Walk the case along `path` as far as the lifecycle allows; the bot never forces a move."""
    case = ctx.case
    if case is None:
        return
    if case.status in _ENGAGE_FROM and S.EM_ATENDIMENTO not in path[:1]:
        path = (S.EM_ATENDIMENTO, *path)
    for target in path:
        if case.status == target:
            continue
        if not ctx.can_move(target):
            break
        await do_change_status(
            ctx.session, case=case, target=target, actor=ctx.actor, reason=reason
        )


async def handoff(ctx: BotContext, reason: str, *, lead: str | None = None) -> BotReply:
    """Hand the conversation to a person, tell the infringer once when, and pause the bot."""
    reply = BotReply()
    if lead:
        reply.say(lead, **ctx.values())
    if ctx.conversation is not None:
        await do_request_handoff(
            ctx.session, conversation=ctx.conversation, reason=reason, actor=ctx.actor
        )
    when = BusinessHours.from_settings(ctx.settings).describe_reply_time(utcnow())
    reply.say("utter_handoff", when=when, **ctx.values())
    reply.pause = True
    return reply


async def _try_identify(ctx: BotContext) -> bool:
    """Link an unmatched conversation to a case from a reference or CPF/CNPJ in the message."""
    if ctx.case is not None:
        return True
    if ctx.conversation is None:
        return False
    case: Case | None = None
    how = ""
    for ref in ctx.turn.entity_values("case_ref"):
        case = await get_case_by_reference(ctx.session, reference=ref)
        how = f"referência {ref}"
        if case is not None:
            break
    if case is None:
        for document in ctx.turn.entity_values("cpf") + ctx.turn.entity_values("cnpj"):
            infringer = await ctx.session.scalar(
                sa.select(Infringer).where(Infringer.document == document.upper())
            )
            if infringer is None:
                continue
            case = await ctx.session.scalar(
                sa.select(Case)
                .where(Case.infringer_id == infringer.id)
                .order_by(Case.id.desc())
                .limit(1)
            )
            how = "documento informado"
            if case is not None:
                break
    if case is None:
        return False
    await do_link_conversation(
        ctx.session, conversation=ctx.conversation, case=case, actor=ctx.actor, how=how
    )
    ctx.case = await load_case(ctx.session, case.id)
    return True


async def _require_case(ctx: BotContext) -> BotReply | None:
    """None when the case is known; otherwise the reply asking how to identify it."""
    if await _try_identify(ctx):
        return None
    return BotReply().say("utter_ask_identification", **ctx.values())


def _listing_lines(listings: Sequence[Listing]) -> str:
    return "\n".join(f"• {item.marketplace}: {item.url}" for item in listings) or "—"


def _offer_slots(offer: Offer | None) -> dict[str, object]:
    if offer is None:
        return {"offer_amount": None, "offer_installments": None}
    return {"offer_amount": str(offer.amount), "offer_installments": float(offer.installments)}


def _pending_offer(ctx: BotContext) -> Offer | None:
    amount = ctx.turn.slots.get("offer_amount")
    count = ctx.turn.slots.get("offer_installments")
    if not amount:
        return None
    return Offer(Decimal(str(amount)), int(float(count or 1)))


# ----------------------------------------------------------------------------- information


async def greet(ctx: BotContext) -> BotReply:
    if not await _try_identify(ctx):
        return BotReply().say("utter_greet_unknown", **ctx.values())
    await _move(ctx, reason="infrator respondeu")
    return BotReply().say("utter_greet_case", **ctx.values())


async def explain_who(ctx: BotContext) -> BotReply:
    await _try_identify(ctx)
    if ctx.case is None:
        return BotReply().say("utter_who_we_are_generic", **ctx.values())
    await _move(ctx, reason="infrator respondeu")
    return BotReply().say("utter_who_we_are", **ctx.values())


async def explain_case(ctx: BotContext) -> BotReply:
    if (ask := await _require_case(ctx)) is not None:
        return ask
    assert ctx.case is not None
    await _move(ctx, reason="infrator pediu explicações")
    return BotReply().say(
        "utter_case_summary", listings=_listing_lines(ctx.case.listings), **ctx.values()
    )


async def list_listings(ctx: BotContext) -> BotReply:
    if (ask := await _require_case(ctx)) is not None:
        return ask
    assert ctx.case is not None
    await _move(ctx, reason="infrator pediu os anúncios")
    return BotReply().say(
        "utter_listings", listings=_listing_lines(ctx.case.listings), **ctx.values()
    )


async def send_notice(ctx: BotContext) -> BotReply:
    if (ask := await _require_case(ctx)) is not None:
        return ask
    assert ctx.case is not None
    await _move(ctx, reason="infrator pediu a notificação")
    await _note(ctx, "Infrator solicitou cópia da notificação.")
    url = f"{ctx.settings.public_base_url.rstrip('/')}/notificacao/{ctx.case.notice_token}"
    return BotReply().say("utter_notice_link", notice_url=url, **ctx.values())


async def consequences(ctx: BotContext) -> BotReply:
    await _try_identify(ctx)
    return BotReply().say(
        "utter_consequences" if ctx.case else "utter_consequences_generic", **ctx.values()
    )


async def acknowledge(ctx: BotContext) -> BotReply:
    if (ask := await _require_case(ctx)) is not None:
        return ask
    await _move(ctx, reason="infrator confirmou o recebimento")
    await _note(ctx, "Infrator confirmou o recebimento da notificação.")
    return BotReply().say("utter_acknowledged", **ctx.values())


_EXTENSION_CUES = re.compile(
    r"\b(mais (prazo|tempo|dias?)|uns dias|alguns dias|prorrog\w*|dilacao|dilatar|estend\w*|"
    r"adiar|adiamento|semana que vem|proxima semana|me da\w* (um|uns|mais)|preciso de (um|mais))"
)


async def deadline(ctx: BotContext) -> BotReply:
    if (ask := await _require_case(ctx)) is not None:
        return ask
    await _move(ctx, reason="infrator perguntou o prazo")
    if _EXTENSION_CUES.search(_fold(ctx.turn.text)):
        await _note(ctx, "Infrator pediu mais prazo.")
        return await handoff(ctx, "pedido de prorrogação de prazo", lead="utter_extension_recorded")
    return BotReply().say("utter_deadline", **ctx.values())


# ----------------------------------------------------------------------------- disputes


async def contest(ctx: BotContext, *, kind: str) -> BotReply:
    """Originality claim, dispute or wrong person: ask for evidence, record, hand off."""
    if (ask := await _require_case(ctx)) is not None:
        return ask
    labels = {
        "claim_original": ("alegação de produto original", "utter_ask_invoice"),
        "dispute": ("contestação da infração", "utter_ask_dispute_evidence"),
        "wrong_person": ("alega não ser o responsável", "utter_wrong_person_recorded"),
    }
    reason, lead = labels[kind]
    await _note(ctx, f"Infrator: {reason}.")
    await _move(ctx, S.EM_CONTESTACAO, reason=reason)
    return await handoff(ctx, reason, lead=lead)


async def removal(ctx: BotContext, *, done: bool) -> BotReply:
    """'Already removed' or 'will remove': listings go to removal pending verification."""
    if (ask := await _require_case(ctx)) is not None:
        return ask
    assert ctx.case is not None
    await _move(ctx, reason="infrator tratou da remoção")
    mentioned = set(ctx.turn.entity_values("url"))
    targets = [
        item
        for item in ctx.case.listings
        if item.status in (ListingStatus.ACTIVE, ListingStatus.RELISTED)
        and (not mentioned or item.url in mentioned)
    ]
    if done:
        for item in targets:
            await do_set_listing_status(
                ctx.session,
                listing=item,
                status=ListingStatus.REMOVAL_PENDING,
                actor=ctx.actor,
                note="Infrator informa que removeu; aguardando verificação.",
            )
        return BotReply().say("utter_removal_recorded", **ctx.values())
    await _note(ctx, "Infrator se comprometeu a remover os anúncios.", listings=len(targets))
    return BotReply().say("utter_removal_promise_recorded", **ctx.values())


# ----------------------------------------------------------------------------- negotiation
#
# The figures come from api.negotiation.policy and the case: the first one stated is the case's
# amount; a proposal the bot makes is always inside the brand's policy; the agreed terms live on
# the case and every payment detail sent states exactly them (a payment request with other terms
# is cancelled, on the timeline, before new details go out).

# "à vista", "de uma vez só": one payment, said in words rather than as "1x".
_ONE_PAYMENT_CUES = re.compile(
    r"\b(a vista|avista|de uma vez|numa vez|uma vez so|parcela unica|pagamento unico|"
    r"sem parcelar|tudo junto)\b"
)


def _requested_installments(ctx: BotContext) -> int | None:
    count = ctx.turn.first_installments()
    if count is not None:
        return count
    return 1 if _ONE_PAYMENT_CUES.search(_fold(ctx.turn.text)) else None


def _agreed(ctx: BotContext) -> Offer | None:
    case = ctx.case
    if case is None or case.agreed_amount is None:
        return None
    return Offer(case.agreed_amount, case.agreed_installments or 1)


def _terms_values(offer: Offer) -> dict[str, str]:
    return {
        "amount": brl(offer.amount),
        "installments": str(offer.installments),
        "installment_amount": brl(offer.installment_amount),
    }


def _propose(ctx: BotContext, offer: Offer) -> BotReply:
    return BotReply(slots=_offer_slots(offer)).say(
        "utter_propose_terms", **_terms_values(offer), **ctx.values()
    )


def _opening(ctx: BotContext, response: str) -> BotReply:
    """The case's amount, in one payment or in up to the policy's installments."""
    assert ctx.case is not None and ctx.brand is not None
    offer = opening_offer(ctx.brand, ctx.case.claimed_amount)
    max_n = max_installments_for(ctx.brand, offer.amount)
    return BotReply(slots=_offer_slots(offer)).say(
        response,
        amount=brl(offer.amount),
        max_installments=str(max_n),
        installment_amount=brl(Offer(offer.amount, max_n).installment_amount),
        **ctx.values(),
    )


def _within_policy(ctx: BotContext, offer: Offer) -> bool:
    assert ctx.case is not None and ctx.brand is not None
    return check_terms(ctx.brand, ctx.case.claimed_amount, offer).verdict is Verdict.ACCEPTABLE


async def ask_amount(ctx: BotContext) -> BotReply:
    """The terms on the table: the agreement, the pending proposal, or the case's amount."""
    if (ask := await _require_case(ctx)) is not None:
        return ask
    assert ctx.case is not None and ctx.brand is not None
    pending, agreed = _pending_offer(ctx), _agreed(ctx)
    if agreed is not None and (pending is None or pending == agreed):
        return BotReply(slots=_offer_slots(agreed)).say(
            "utter_agreed_terms", **_terms_values(agreed), **ctx.values()
        )
    if agreed is None:
        await _move(ctx, S.EM_NEGOCIACAO, reason="infrator perguntou o valor")
    opening = opening_offer(ctx.brand, ctx.case.claimed_amount)
    if pending is not None and pending != opening and _within_policy(ctx, pending):
        return _propose(ctx, pending)
    return _opening(ctx, "utter_offer")


async def counteroffer(ctx: BotContext) -> BotReply:
    """An amount the infringer offers: accepted at their figure if the policy allows it."""
    if (ask := await _require_case(ctx)) is not None:
        return ask
    assert ctx.case is not None and ctx.brand is not None
    amount = ctx.turn.first_amount()
    requested = _requested_installments(ctx)
    # "mto caro, faz em 5x?" changes the installments; "desconto à vista?" asks for a discount.
    if amount is None and ctx.turn.first_installments() is not None:
        return await installments(ctx)
    await _move(ctx, S.EM_NEGOCIACAO, reason="contraproposta do infrator")
    evaluation = evaluate_counteroffer(ctx.brand, ctx.case.claimed_amount, amount, requested or 1)
    if evaluation.verdict is Verdict.HANDOFF:
        await _note(ctx, f"Contraproposta fora da política: {evaluation.reason}.")
        return await handoff(ctx, evaluation.reason, lead="utter_counteroffer_needs_analyst")
    if evaluation.verdict is Verdict.NEEDS_INPUT:
        return _opening(ctx, "utter_ask_counteroffer")
    offer = evaluation.offer
    assert offer is not None
    await _note(
        ctx, f"Contraproposta dentro da política: {brl(offer.amount)} em {offer.installments}x."
    )
    return _propose(ctx, offer)


async def installments(ctx: BotContext) -> BotReply:
    """Installments of the terms on the table (pending proposal, agreement or case's amount)."""
    if (ask := await _require_case(ctx)) is not None:
        return ask
    assert ctx.case is not None and ctx.brand is not None
    pending = _pending_offer(ctx)
    if pending is not None and not _within_policy(ctx, pending):
        pending = None
    base = pending or _agreed(ctx) or opening_offer(ctx.brand, ctx.case.claimed_amount)
    if ctx.case.agreed_amount is None:
        await _move(ctx, S.EM_NEGOCIACAO, reason="infrator pediu parcelamento")
    evaluation = evaluate_installments(ctx.brand, base.amount, _requested_installments(ctx))
    if evaluation.verdict is Verdict.HANDOFF:
        await _note(ctx, f"Parcelamento fora da política: {evaluation.reason}.")
        return await handoff(ctx, evaluation.reason, lead="utter_counteroffer_needs_analyst")
    offer = evaluation.offer
    assert offer is not None
    if evaluation.verdict is Verdict.NEEDS_INPUT:
        return BotReply(slots=_offer_slots(base)).say(
            "utter_installments_options",
            amount=brl(base.amount),
            max_installments=str(offer.installments),
            installment_amount=brl(offer.installment_amount),
            **ctx.values(),
        )
    return _propose(ctx, offer)


async def accept(ctx: BotContext) -> BotReply:
    """Accepting the proposed terms: they become the case's agreement and the payment goes out."""
    if (ask := await _require_case(ctx)) is not None:
        return ask
    case, brand = ctx.case, ctx.brand
    assert case is not None and brand is not None
    offer, agreed = _pending_offer(ctx), _agreed(ctx)
    # "ta bom, faço em 5x então": agreeing to the amount but not to the installments.
    requested = _requested_installments(ctx)
    on_the_table = offer or agreed
    if requested is not None and on_the_table and requested != on_the_table.installments:
        return await installments(ctx)
    if offer is None or offer == agreed:
        if agreed is not None:
            reply = await send_payment(ctx)
            reply.slots.update(_offer_slots(None))
            return reply
        return await ask_amount(ctx)
    # Re-check against the policy: slots come from the tracker, the policy is the authority.
    check = check_terms(brand, case.claimed_amount, offer)
    if check.verdict is not Verdict.ACCEPTABLE:
        return await handoff(ctx, f"termos fora da política no aceite: {check.reason}")
    current = await get_current_payment_request(ctx.session, case_id=case.id)
    if current is not None and has_payments(current):
        await _note(
            ctx, f"Infrator quer mudar o acordo para {brl(offer.amount)} em {offer.installments}x."
        )
        return await handoff(ctx, "novo acordo com parcela já paga")
    await _move(ctx, S.EM_NEGOCIACAO, S.ACORDO_PROPOSTO, reason="infrator aceitou os termos")
    if case.status is not S.ACORDO_PROPOSTO:
        await _note(ctx, f"Infrator quer fechar {brl(offer.amount)} em {offer.installments}x.")
        return await handoff(ctx, f"aceite de termos com o caso em {case.status}")
    case.agreed_amount = offer.amount
    case.agreed_installments = offer.installments
    emit(
        ctx.session,
        ev.AgreementProposed(
            **about(conversation=ctx.conversation, case_id=case.id, actor=ctx.actor),
            amount=offer.amount,
            installments=offer.installments,
        ),
    )
    replaced = (
        f" (substitui o acordo de {brl(agreed.amount)} em {agreed.installments}x)" if agreed else ""
    )
    await _note(ctx, f"Infrator aceitou {brl(offer.amount)} em {offer.installments}x{replaced}.")
    reply = await send_payment(ctx)
    reply.says.insert(0, Say("utter_agreement_registered", ctx.values()))
    reply.slots.update(_offer_slots(None))
    return reply


async def send_payment(ctx: BotContext, *, fresh: bool = False) -> BotReply:
    """The payment details of the case's agreement, and of nothing else.

    The current payment request is reused only when it asks for exactly the agreed terms; one
    with other terms (an agreement renegotiated since) is cancelled, on the timeline, and the
    infringer is told the old details no longer hold. `fresh` replaces it anyway (a payment
    problem). A request with a paid installment is never replaced by the bot.
    """
    if (ask := await _require_case(ctx)) is not None:
        return ask
    case, brand = ctx.case, ctx.brand
    assert case is not None and brand is not None
    agreed = _agreed(ctx)
    if agreed is None:
        reply = await ask_amount(ctx)
        reply.says.insert(0, Say("utter_payment_needs_agreement", {}))
        return reply
    request = await get_current_payment_request(ctx.session, case_id=case.id)
    cancelled: PaymentRequest | None = None
    if request is not None and (
        fresh or not states_terms(request, amount=agreed.amount, installments=agreed.installments)
    ):
        if has_payments(request):
            await _note(ctx, "Pedido de novos dados de pagamento com parcela já paga.")
            return await handoff(ctx, "pagamento com parcela já paga precisa ser revisto")
        if not fresh:
            cancelled = request
        request = None
    if request is None:
        request = await do_issue_payment_request(
            ctx.session,
            case=case,
            brand=brand,
            amount=agreed.amount,
            installments=agreed.installments,
            provider=get_payment_provider(),
            actor=ctx.actor,
        )
    first = installments_of(request)[0]
    link = f"{ctx.settings.public_base_url.rstrip('/')}/pagamento/{request.public_token}"
    reply = BotReply()
    if cancelled is not None:
        reply.say(
            "utter_previous_payment_cancelled",
            old_amount=brl(cancelled.total_amount),
            old_installments=str(cancelled.installments_count),
            **ctx.values(),
        )
    return reply.say(
        "utter_payment_details",
        amount=brl(request.total_amount),
        installments=str(request.installments_count),
        installment_amount=brl(first.amount),
        due_date=first.due_date.strftime("%d/%m/%Y"),
        pix=first.pix_payload,
        boleto=first.boleto_line,
        payment_link=link,
        payee=brand.payee_name or ctx.settings.firm_name,
        **ctx.values(),
    )


async def payment_problem(ctx: BotContext, *, earlier_problems: int) -> BotReply:
    if (ask := await _require_case(ctx)) is not None:
        return ask
    await _note(ctx, "Infrator relatou problema no pagamento.")
    if earlier_problems >= 1 or ctx.case is None or ctx.case.agreed_amount is None:
        return await handoff(ctx, "problema no pagamento", lead="utter_payment_problem_handoff")
    reply = await send_payment(ctx, fresh=True)
    if not reply.pause:
        reply.says.insert(0, Say("utter_payment_fresh", {}))
    return reply


async def inform_paid(ctx: BotContext) -> BotReply:
    if (ask := await _require_case(ctx)) is not None:
        return ask
    # Never marks the case paid: reconciliation or an analyst confirms.
    await _note(ctx, "Infrator informou pagamento (aguardando confirmação).")
    return BotReply().say("utter_payment_pending_confirmation", **ctx.values())


async def affirm(ctx: BotContext) -> BotReply:
    if _pending_offer(ctx) is not None:
        return await accept(ctx)
    if _agreed(ctx) is not None and _requested_installments(ctx) is not None:
        return await installments(ctx)
    return BotReply().say("utter_ok_anything_else", **ctx.values())


async def deny(ctx: BotContext) -> BotReply:
    if _pending_offer(ctx) is not None:
        await _note(ctx, "Infrator recusou a proposta.")
        return BotReply(slots=_offer_slots(None)).say("utter_ask_counterproposal", **ctx.values())
    return BotReply().say("utter_ok_anything_else", **ctx.values())


async def inform_document(ctx: BotContext) -> BotReply:
    was_known = ctx.case is not None
    documents = ctx.turn.entity_values("cpf") + ctx.turn.entity_values("cnpj")
    if not documents and not ctx.turn.entity_values("case_ref"):
        return BotReply().say("utter_document_invalid", **ctx.values())
    if not await _try_identify(ctx):
        await _note(ctx, "Documento informado não corresponde a nenhum caso.")
        return BotReply().say("utter_document_not_found", **ctx.values())
    assert ctx.case is not None
    if (
        was_known
        and documents
        and ctx.case.infringer.document not in {d.upper() for d in documents}
    ):
        await _note(ctx, "Documento informado difere do cadastrado no caso.")
        return await handoff(ctx, "documento divergente do cadastro")
    await _move(ctx, reason="infrator se identificou")
    return BotReply().say("utter_identified", **ctx.values())


# ----------------------------------------------------------------------------- escalations


async def escalate(ctx: BotContext, *, reason: str, lead: str | None = None) -> BotReply:
    await _try_identify(ctx)
    await _note(ctx, f"Encaminhamento: {reason}.")
    if reason == "infrator informou advogado/jurídico" and ctx.can_move(S.EM_CONTESTACAO):
        await _move(ctx, S.EM_CONTESTACAO, reason=reason)
    return await handoff(ctx, reason, lead=lead)


async def opt_out(ctx: BotContext) -> BotReply:
    """Confirm once, put the address on the suppression list, hand off for review."""
    if ctx.conversation is not None:
        contact = await ctx.session.get(ContactPoint, ctx.conversation.contact_point_id)
        if contact is not None and contact.opted_out_at is None:
            contact.opted_out_at = utcnow()
            contact.opt_out_reason = "pedido do infrator na conversa"
            emit(
                ctx.session,
                ev.ContactOptedOut(
                    **about(conversation=ctx.conversation, actor=EventActorKind.INFRINGER),
                    contact_id=contact.id,
                    reason=contact.opt_out_reason,
                ),
            )
    await _note(ctx, "Infrator pediu para não receber mais mensagens (opt-out).")
    reply = await handoff(ctx, "opt-out: revisar contato")
    # The opt-out confirmation is the last thing we say; no "a person will answer" promise.
    reply.says = [s for s in reply.says if s.response != "utter_handoff"]
    reply.say("utter_opt_out_confirmed", **ctx.values())
    return reply


async def fallback(ctx: BotContext, *, consecutive: int) -> BotReply:
    """First miss: ask to rephrase. Second in a row: a person takes over.

    A message the NLU could not place but that names a number of installments ("ta bom, faço
    em 5x então", "à vista então") while terms are on the table changes those terms.
    A voice note, sticker or picture without text gets an honest answer: the bot cannot
    listen or look yet, so it asks for text (and a person takes over on the second one).
    """
    if media_only_labels(ctx.turn.text) is not None:
        if consecutive >= 2:
            return await handoff(ctx, "mensagens sem texto (áudio, imagem ou figurinha)")
        return BotReply().say("utter_media_without_text", **ctx.values())
    on_the_table = _pending_offer(ctx) or _agreed(ctx)
    if on_the_table is not None and _requested_installments(ctx) is not None:
        return await installments(ctx)
    if consecutive >= 2:
        return await handoff(ctx, "duas mensagens seguidas não compreendidas")
    return BotReply().say("utter_please_rephrase", **ctx.values())


async def bot_challenge(ctx: BotContext) -> BotReply:
    return BotReply().say("utter_iamabot", **ctx.values())
