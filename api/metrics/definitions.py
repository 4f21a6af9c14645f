"""What each figure means — the one place (the README and the panel's help quote it).

Every figure is computed from the event stream (api/events) folded into the rollups
(api/metrics/fold.py); nothing is sampled or estimated.
"""

from __future__ import annotations

# Channels whose provider reports delivery and read receipts (WhatsApp). On the others (e-mail)
# "delivered" means accepted by the receiving server and not bounced afterwards.
RECEIPT_CHANNELS = frozenset({"whatsapp"})

# Alert kinds (alerts issue) that mean a response target was missed.
_SLA_MARKERS = ("first_response", "next_response", "sla")


def is_sla_alert(name: str | None) -> bool:
    """Whether an alert.raised kind is an SLA breach (a first/next response target missed)."""
    return bool(name) and any(marker in str(name) for marker in _SLA_MARKERS)


# (key, pt-BR label, definition in English)
DEFINITIONS: tuple[tuple[str, str, str], ...] = (
    (
        "period",
        "Período",
        "Local days in the business time zone. Conversation figures follow the conversations "
        "started in the period; message figures the messages sent in it; times the waits that "
        "began in it; event counts the events that occurred in it; case figures (funnel, "
        "agreement, payment, removal, conversion, amounts) the cohort of cases notified in the "
        "period (a case never notified: its first event).",
    ),
    (
        "response_rate",
        "Taxa de resposta",
        "Conversations in which the infringer answered (at least one message of theirs that is "
        "not an auto-reply or a bounce) / conversations in which we wrote at least one message. "
        "The same by distinct cases beside it.",
    ),
    (
        "delivery_rate",
        "Taxa de entrega",
        "Outbound messages delivered / outbound messages sent (by bot, analysts or system). "
        "WhatsApp: the provider reported delivered or read. E-mail: accepted by the receiving "
        "server and not bounced later.",
    ),
    (
        "read_rate",
        "Taxa de leitura",
        "WhatsApp only: messages with a read receipt / messages delivered.",
    ),
    (
        "bot_first_response",
        "1ª resposta do bot",
        "From the infringer's first message of a conversation (the start of the first unanswered "
        "run) to the bot's next message.",
    ),
    (
        "bot_next_response",
        "Resposta seguinte do bot",
        "Every later run of unanswered infringer messages answered by the bot: from the first "
        "message of the run to the bot's reply.",
    ),
    (
        "human_first_response",
        "1ª resposta humana",
        "From the handoff (handoff.requested; or the take-over when an analyst claims a "
        "conversation straight from the bot) to the first analyst message after it — not from "
        "the infringer's first message. Credited to the analyst who wrote it.",
    ),
    (
        "human_next_response",
        "Resposta seguinte humana",
        "While a person holds the conversation, from the first unanswered infringer message to "
        "the analyst's reply.",
    ),
    (
        "queue_wait",
        "Espera na fila",
        "From the handoff request to the claim (credited to the analyst who took it).",
    ),
    (
        "handoff_rate",
        "Taxa de transbordo",
        "Conversations with at least one handoff / conversations in which the infringer "
        "answered. Reasons: the handoff.requested reason, counted as events and distinct cases.",
    ),
    (
        "opt_out_rate",
        "Taxa de opt-out",
        "Conversations with an opt-out / conversations in which we wrote.",
    ),
    (
        "agreement_rate",
        "Taxa de acordo",
        "Cases contacted on the channel (we wrote there) that reached an agreement "
        "(agreement.proposed, or the status ACORDO_PROPOSTO/ACORDO_ASSINADO) / cases contacted "
        "on the channel. A case contacted on both channels counts on both.",
    ),
    (
        "payment_rate",
        "Taxa de pagamento",
        "Cases contacted on the channel with a confirmed payment (payment.confirmed: an analyst "
        "or reconciliation, never a receipt image) / cases contacted on the channel.",
    ),
    (
        "removal_rate",
        "Taxa de remoção",
        "Cases contacted on the channel with at least one listing verified removed "
        "(listing.status_changed to removed) / cases contacted on the channel.",
    ),
    (
        "conversion",
        "Conversão",
        "Of the cases whose infringer engaged on the channel (wrote at least one message there), "
        "the share that reached agreement / payment (multi-touch: a case engaged on both "
        "channels counts on both).",
    ),
    (
        "attribution",
        "Atribuição",
        "Last touch: each agreement is credited once, to the channel of the infringer's last "
        "message before it (the channel of the agreement event when they never wrote); "
        "'attributed agreements/payments' add up to the total.",
    ),
    (
        "bot_only_share",
        "Resolvido só pelo bot",
        "Attributed agreements reached with no handoff (requested or taken) on the case before "
        "the agreement / attributed agreements.",
    ),
    (
        "notice_to_agreement",
        "Notificação → acordo",
        "From the case's first move to NOTIFICADO to its first agreement; and to its first "
        "confirmed payment (notice → payment). Per channel by attribution.",
    ),
    (
        "funnel",
        "Funil",
        "Cases of the cohort that ever reached NOTIFICADO, EM_ATENDIMENTO (the infringer "
        "answered), ACORDO (agreement), PAGO (payment confirmed), ENCERRADO; a reopened case "
        "keeps the stages it reached (and counts as reopened). Cases by status: the status now.",
    ),
    (
        "amounts",
        "Valores",
        "Agreed: the latest agreed amount of each cohort case with an agreement. Received: the "
        "sum of confirmed payments of the cohort's cases.",
    ),
    (
        "analyst_agreements",
        "Acordos do analista",
        "An agreement is credited to the analyst who recorded it, else to the last analyst who "
        "took a conversation of the case before it (none when the bot closed it alone); counted "
        "in the period of the agreement. Discount = the case's reference amount (its own amount, "
        "else the brand's base amount) − the agreed amount; rate = discount / reference.",
    ),
    (
        "sla_breaches",
        "Violações de SLA",
        "alert.raised events of the first/next response kinds (alerts issue), credited to the "
        "analyst named by the alert, else the conversation's last analyst.",
    ),
    (
        "events_and_cases",
        "Eventos e casos",
        "Counts of events and of distinct cases are shown side by side (two handoffs of one case "
        "are 2 events, 1 case).",
    ),
    (
        "times",
        "Tempos",
        "Every time in wall-clock and in business time (the business calendar: time zone, "
        "shifts, working days, national holidays and the firm's own); median and 90th percentile "
        "(linear interpolation, as PostgreSQL's percentile_cont) and mean, with n.",
    ),
)
