import pytest

from api.cases.lifecycle import (
    TRANSITIONS,
    CaseStatus,
    allowed_moves,
    check_transition,
    status_label,
)
from api.errors import IllegalTransition

pytestmark = pytest.mark.unit

S = CaseStatus


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DETECTADO, S.EM_TRIAGEM),
        (S.NOTIFICADO, S.EM_ATENDIMENTO),
        (S.NOTIFICADO, S.SEM_RESPOSTA),
        (S.EM_ATENDIMENTO, S.EM_CONTESTACAO),
        (S.EM_CONTESTACAO, S.ESCALADO_JURIDICO),
        (S.EM_NEGOCIACAO, S.ACORDO_PROPOSTO),
        (S.AGUARDANDO_PAGAMENTO, S.ACORDO_DESCUMPRIDO),
        (S.PAGO, S.ENCERRADO),
        (S.ENCERRADO, S.REABERTO),
    ],
)
def test_domain_moves_are_allowed(current: CaseStatus, target: CaseStatus) -> None:
    check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DETECTADO, S.PAGO),
        (S.NOTIFICADO, S.ACORDO_PROPOSTO),
        (S.EM_ATENDIMENTO, S.AGUARDANDO_PAGAMENTO),
        (S.ACORDO_PROPOSTO, S.PAGO),
        (S.ENCERRADO, S.EM_NEGOCIACAO),
        (S.PAGO, S.EM_NEGOCIACAO),
        (S.EM_NEGOCIACAO, S.EM_NEGOCIACAO),
    ],
)
def test_illegal_moves_are_refused_with_the_allowed_ones(
    current: CaseStatus, target: CaseStatus
) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, target)
    # Analysts read labels ("Em atendimento"); API clients get the codes in the details.
    assert status_label(current) in info.value.message and str(current) not in info.value.message
    assert info.value.details["current"] == str(current)
    assert info.value.details["allowed"] == sorted(allowed_moves(current))
    assert info.value.status_code == 409


def test_every_status_has_a_way_forward_and_targets_are_statuses() -> None:
    assert set(TRANSITIONS) == set(CaseStatus)
    for current, targets in TRANSITIONS.items():
        assert targets, current
        assert current not in targets
