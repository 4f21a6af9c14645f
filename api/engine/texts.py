"""What the service itself says when Rasa cannot (pt-BR, shown to infringers)."""

ENGINE_DOWN_REPLY = (
    "Recebemos a sua mensagem. Uma pessoa da nossa equipe vai continuar o atendimento em breve."
)
OPT_OUT_CONFIRMATION = (
    "Pronto, você não vai mais receber mensagens automáticas por este canal. "
    "Se precisar, é só escrever."
)
OPT_OUT_KEYWORDS = frozenset({"SAIR", "STOP", "PARAR", "PARE", "CANCELAR", "DESCADASTRAR"})


def is_opt_out_keyword(text: str) -> bool:
    return text.strip().strip(".!").upper() in OPT_OUT_KEYWORDS
