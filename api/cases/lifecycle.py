"""The case lifecycle of DOMAIN.md: statuses and the moves allowed between them."""

from __future__ import annotations

import enum

from api.errors import IllegalTransition


class CaseStatus(enum.StrEnum):
    DETECTADO = "DETECTADO"
    EM_TRIAGEM = "EM_TRIAGEM"
    APTO_NOTIFICAR = "APTO_NOTIFICAR"
    NOTIFICADO = "NOTIFICADO"
    SEM_RESPOSTA = "SEM_RESPOSTA"
    EM_ATENDIMENTO = "EM_ATENDIMENTO"
    EM_NEGOCIACAO = "EM_NEGOCIACAO"
    EM_CONTESTACAO = "EM_CONTESTACAO"
    DESCARTADO = "DESCARTADO"
    ESCALADO_JURIDICO = "ESCALADO_JURIDICO"
    ACORDO_PROPOSTO = "ACORDO_PROPOSTO"
    ACORDO_ASSINADO = "ACORDO_ASSINADO"
    AGUARDANDO_PAGAMENTO = "AGUARDANDO_PAGAMENTO"
    PAGO = "PAGO"
    ACORDO_DESCUMPRIDO = "ACORDO_DESCUMPRIDO"
    ENCERRADO = "ENCERRADO"
    REABERTO = "REABERTO"


S = CaseStatus

# How analysts and infringers read a status (timeline lines, the panel, error messages).
STATUS_LABELS: dict[CaseStatus, str] = {
    S.DETECTADO: "Detectado",
    S.EM_TRIAGEM: "Em triagem",
    S.APTO_NOTIFICAR: "Apto a notificar",
    S.NOTIFICADO: "Notificado",
    S.SEM_RESPOSTA: "Sem resposta",
    S.EM_ATENDIMENTO: "Em atendimento",
    S.EM_NEGOCIACAO: "Em negociação",
    S.EM_CONTESTACAO: "Em contestação",
    S.DESCARTADO: "Descartado",
    S.ESCALADO_JURIDICO: "Escalado ao jurídico",
    S.ACORDO_PROPOSTO: "Acordo proposto",
    S.ACORDO_ASSINADO: "Acordo assinado",
    S.AGUARDANDO_PAGAMENTO: "Aguardando pagamento",
    S.PAGO: "Pago",
    S.ACORDO_DESCUMPRIDO: "Acordo descumprido",
    S.ENCERRADO: "Encerrado",
    S.REABERTO: "Reaberto",
}


def status_label(value: object) -> str:
    """The plain Portuguese label of a status (or of its code, as stored in timeline data);
    anything unknown is shown as it is."""
    try:
        return STATUS_LABELS[CaseStatus(str(value))]
    except ValueError:
        return str(value)


# The main line of DOMAIN.md plus the moves a real team needs (triage discards, a late reply
# to an unanswered notice, a counteroffer after a proposal, legal review from any dispute).
TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    S.DETECTADO: frozenset({S.EM_TRIAGEM, S.DESCARTADO}),
    S.EM_TRIAGEM: frozenset({S.APTO_NOTIFICAR, S.DESCARTADO}),
    S.APTO_NOTIFICAR: frozenset({S.NOTIFICADO, S.DESCARTADO}),
    S.NOTIFICADO: frozenset({S.SEM_RESPOSTA, S.EM_ATENDIMENTO}),
    S.SEM_RESPOSTA: frozenset({S.EM_ATENDIMENTO, S.ESCALADO_JURIDICO, S.ENCERRADO}),
    S.EM_ATENDIMENTO: frozenset({S.EM_NEGOCIACAO, S.EM_CONTESTACAO}),
    S.EM_CONTESTACAO: frozenset({S.DESCARTADO, S.EM_NEGOCIACAO, S.ESCALADO_JURIDICO}),
    S.EM_NEGOCIACAO: frozenset({S.ACORDO_PROPOSTO, S.EM_CONTESTACAO, S.ESCALADO_JURIDICO}),
    S.ACORDO_PROPOSTO: frozenset({S.ACORDO_ASSINADO, S.EM_NEGOCIACAO, S.ESCALADO_JURIDICO}),
    S.ACORDO_ASSINADO: frozenset({S.AGUARDANDO_PAGAMENTO}),
    S.AGUARDANDO_PAGAMENTO: frozenset({S.PAGO, S.ACORDO_DESCUMPRIDO}),
    S.ACORDO_DESCUMPRIDO: frozenset({S.AGUARDANDO_PAGAMENTO, S.ESCALADO_JURIDICO, S.ENCERRADO}),
    S.ESCALADO_JURIDICO: frozenset({S.EM_NEGOCIACAO, S.ENCERRADO}),
    S.PAGO: frozenset({S.ENCERRADO}),
    S.DESCARTADO: frozenset({S.ENCERRADO}),
    S.ENCERRADO: frozenset({S.REABERTO}),
    S.REABERTO: frozenset({S.EM_TRIAGEM, S.NOTIFICADO, S.EM_NEGOCIACAO}),
}

# Statuses in which a case still expects a conversation with the infringer.
OPEN_STATUSES: frozenset[CaseStatus] = frozenset(TRANSITIONS) - {S.ENCERRADO, S.DESCARTADO}
CONTACTED_STATUSES: frozenset[CaseStatus] = OPEN_STATUSES - {
    S.DETECTADO,
    S.EM_TRIAGEM,
    S.APTO_NOTIFICAR,
}
# Only an analyst or payment reconciliation confirms a payment (a receipt image is not proof).
HUMAN_ONLY_TARGETS: frozenset[CaseStatus] = frozenset({S.PAGO, S.ACORDO_ASSINADO, S.ENCERRADO})
REASON_REQUIRED: frozenset[CaseStatus] = frozenset({S.ENCERRADO, S.DESCARTADO, S.REABERTO})


def allowed_moves(current: CaseStatus) -> frozenset[CaseStatus]:
    return TRANSITIONS.get(current, frozenset())


def check_transition(current: CaseStatus, target: CaseStatus) -> None:
    """Raise IllegalTransition when the lifecycle does not allow `current → target`."""
    if target not in allowed_moves(current):
        allowed = (
            ", ".join(status_label(s) for s in sorted(allowed_moves(current), key=list(S).index))
            or "nenhuma"
        )
        raise IllegalTransition(
            f"Transição de status não permitida: {status_label(current)} → "
            f"{status_label(target)}. A partir de {status_label(current)} são permitidas: "
            f"{allowed}.",
            current=str(current),
            target=str(target),
            allowed=sorted(allowed_moves(current)),
        )
