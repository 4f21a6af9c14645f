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


# (key, pt-BR label, definition in English, the same in Brazilian Portuguese)
DEFINITIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "period",
        "Período",
        "Local days in the business time zone. Conversation figures follow the conversations "
        "started in the period; message figures the messages sent in it; times the waits that "
        "began in it; event counts the events that occurred in it; case figures (funnel, "
        "agreement, payment, removal, conversion, amounts) the cohort of cases notified in the "
        "period (a case never notified: its first event).",
        "Dias locais no fuso do calendário. Números de conversa seguem as conversas iniciadas no período; de mensagens, as mensagens enviadas nele; tempos, as esperas que começaram nele; contagens de eventos, os eventos ocorridos nele; números de caso (funil, acordo, pagamento, remoção, conversão, valores), a coorte de casos notificados no período (caso nunca notificado: seu primeiro evento).",
    ),
    (
        "response_rate",
        "Taxa de resposta",
        "Conversations in which the infringer answered (at least one message of theirs that is "
        "not an auto-reply or a bounce) / conversations in which we wrote at least one message. "
        "The same by distinct cases beside it.",
        "Conversas em que o infrator respondeu (ao menos uma mensagem dele que não seja resposta automática nem devolução) / conversas em que escrevemos ao menos uma mensagem. Ao lado, o mesmo por casos distintos.",
    ),
    (
        "delivery_rate",
        "Taxa de entrega",
        "Outbound messages delivered / outbound messages sent (by bot, analysts or system). "
        "WhatsApp: the provider reported delivered or read. E-mail: accepted by the receiving "
        "server and not bounced later.",
        "Mensagens enviadas entregues / mensagens enviadas (bot, analistas ou sistema). WhatsApp: o provedor informou entregue ou lida. E-mail: aceita pelo servidor de destino e não devolvida depois.",
    ),
    (
        "read_rate",
        "Taxa de leitura",
        "WhatsApp only: messages with a read receipt / messages delivered.",
        "Só WhatsApp: mensagens com confirmação de leitura / mensagens entregues.",
    ),
    (
        "bot_first_response",
        "1ª resposta do bot",
        "From the infringer's first message of a conversation (the start of the first unanswered "
        "run) to the bot's next message.",
        "Da primeira mensagem do infrator na conversa (início da primeira sequência sem resposta) até a mensagem seguinte do bot.",
    ),
    (
        "bot_next_response",
        "Resposta seguinte do bot",
        "Every later run of unanswered infringer messages answered by the bot: from the first "
        "message of the run to the bot's reply.",
        "Cada sequência seguinte de mensagens do infrator respondida pelo bot: da primeira mensagem da sequência até a resposta.",
    ),
    (
        "human_first_response",
        "1ª resposta humana",
        "From the handoff (handoff.requested; or the take-over when an analyst claims a "
        "conversation straight from the bot) to the first analyst message after it — not from "
        "the infringer's first message. Credited to the analyst who wrote it.",
        "Do transbordo (pedido de atendimento humano; ou a tomada da conversa quando um analista a assume direto do bot) até a primeira mensagem de um analista — não desde a primeira mensagem do infrator. Creditada ao analista que escreveu.",
    ),
    (
        "human_next_response",
        "Resposta seguinte humana",
        "While a person holds the conversation, from the first unanswered infringer message to "
        "the analyst's reply.",
        "Com a conversa com uma pessoa, da primeira mensagem do infrator sem resposta até a resposta do analista.",
    ),
    (
        "queue_wait",
        "Espera na fila",
        "From the handoff request to the claim (credited to the analyst who took it).",
        "Do pedido de transbordo até a conversa ser assumida (creditada a quem assumiu).",
    ),
    (
        "handoff_rate",
        "Taxa de transbordo",
        "Conversations with at least one handoff / conversations in which the infringer "
        "answered. Reasons: the handoff.requested reason, counted as events and distinct cases.",
        "Conversas com ao menos um transbordo / conversas em que o infrator respondeu. Motivos: o motivo do pedido, contado em eventos e casos distintos.",
    ),
    (
        "opt_out_rate",
        "Taxa de opt-out",
        "Conversations with an opt-out / conversations in which we wrote.",
        "Conversas com opt-out / conversas em que escrevemos.",
    ),
    (
        "agreement_rate",
        "Taxa de acordo",
        "Cases contacted on the channel (we wrote there) that reached an agreement "
        "(agreement.proposed, or the status ACORDO_PROPOSTO/ACORDO_ASSINADO) / cases contacted "
        "on the channel. A case contacted on both channels counts on both.",
        "Casos contatados no canal (escrevemos por ele) que chegaram a acordo (acordo proposto, ou status ACORDO_PROPOSTO/ACORDO_ASSINADO) / casos contatados no canal. Caso contatado nos dois canais conta nos dois.",
    ),
    (
        "payment_rate",
        "Taxa de pagamento",
        "Cases contacted on the channel with a confirmed payment (payment.confirmed: an analyst "
        "or reconciliation, never a receipt image) / cases contacted on the channel.",
        "Casos contatados no canal com pagamento confirmado (por analista ou conciliação, nunca por foto de comprovante) / casos contatados no canal.",
    ),
    (
        "removal_rate",
        "Taxa de remoção",
        "Cases contacted on the channel with at least one listing verified removed "
        "(listing.status_changed to removed) / cases contacted on the channel.",
        "Casos contatados no canal com ao menos um anúncio verificado como removido / casos contatados no canal.",
    ),
    (
        "conversion",
        "Conversão",
        "Of the cases whose infringer engaged on the channel (wrote at least one message there), "
        "the share that reached agreement / payment (multi-touch: a case engaged on both "
        "channels counts on both).",
        "Dos casos em que o infrator interagiu no canal (escreveu ao menos uma mensagem nele), a parcela que chegou a acordo / pagamento (multitoque: quem interagiu nos dois canais conta nos dois).",
    ),
    (
        "attribution",
        "Atribuição",
        "Last touch: each agreement is credited once, to the channel of the infringer's last "
        "message before it (the channel of the agreement event when they never wrote); "
        "'attributed agreements/payments' add up to the total.",
        "Último toque: cada acordo é creditado uma vez, ao canal da última mensagem do infrator antes dele (o canal do evento de acordo se ele nunca escreveu); 'acordos atribuídos' somam o total.",
    ),
    (
        "bot_only_share",
        "Resolvido só pelo bot",
        "Attributed agreements reached with no handoff (requested or taken) on the case before "
        "the agreement / attributed agreements.",
        "Acordos atribuídos fechados sem transbordo (pedido ou tomada) no caso antes do acordo / acordos atribuídos.",
    ),
    (
        "notice_to_agreement",
        "Notificação → acordo",
        "From the case's first move to NOTIFICADO to its first agreement; and to its first "
        "confirmed payment (notice → payment). Per channel by attribution.",
        "Da primeira passagem do caso a NOTIFICADO até o primeiro acordo; e até o primeiro pagamento confirmado (notificação → pagamento). Por canal, pela atribuição.",
    ),
    (
        "funnel",
        "Funil",
        "Cases of the cohort that ever reached NOTIFICADO, EM_ATENDIMENTO (the infringer "
        "answered), ACORDO (agreement), PAGO (payment confirmed), ENCERRADO; a reopened case "
        "keeps the stages it reached (and counts as reopened). Cases by status: the status now.",
        "Casos da coorte que alguma vez chegaram a NOTIFICADO, EM_ATENDIMENTO (o infrator respondeu), ACORDO, PAGO (pagamento confirmado), ENCERRADO; um caso reaberto mantém as etapas alcançadas (e conta como reaberto). Casos por status: o status de agora.",
    ),
    (
        "amounts",
        "Valores",
        "Agreed: the latest agreed amount of each cohort case with an agreement. Received: the "
        "sum of confirmed payments of the cohort's cases.",
        "Acordado: o último valor acordado de cada caso da coorte com acordo. Recebido: a soma dos pagamentos confirmados dos casos da coorte.",
    ),
    (
        "analyst_agreements",
        "Acordos do analista",
        "An agreement is credited to the analyst who recorded it, else to the last analyst who "
        "took a conversation of the case before it (none when the bot closed it alone); counted "
        "in the period of the agreement. Discount = the case's reference amount (its own amount, "
        "else the brand's base amount) − the agreed amount; rate = discount / reference.",
        "Um acordo é creditado ao analista que o registrou; senão ao último analista que assumiu uma conversa do caso antes dele (nenhum quando o bot fechou sozinho); contado no período do acordo. Desconto = valor de referência do caso (o valor próprio, senão o valor base da marca) − valor acordado; taxa = desconto / referência.",
    ),
    (
        "sla_breaches",
        "Violações de SLA",
        "alert.raised events of the first/next response kinds (alerts issue), credited to the "
        "analyst named by the alert, else the conversation's last analyst, else the alert's "
        "recipient.",
        "Alertas de 1ª resposta e de resposta seguinte vencidas (alertas operacionais), creditados ao analista indicado no alerta, senão ao último analista da conversa, senão a quem recebeu o alerta.",
    ),
    (
        "events_and_cases",
        "Eventos e casos",
        "Counts of events and of distinct cases are shown side by side (two handoffs of one case "
        "are 2 events, 1 case).",
        "Contagens de eventos e de casos distintos lado a lado (dois transbordos de um caso são 2 eventos, 1 caso).",
    ),
    (
        "times",
        "Tempos",
        "Every time in wall-clock and in business time (the business calendar: time zone, "
        "shifts, working days, national holidays and the firm's own); median and 90th percentile "
        "(linear interpolation, as PostgreSQL's percentile_cont) and mean, with n.",
        "Todo tempo em horário corrido e em horário útil (o calendário: fuso, turnos, dias úteis, feriados nacionais e os da empresa); mediana e percentil 90 (interpolação linear, como o percentile_cont do PostgreSQL) e média, com n.",
    ),
)
