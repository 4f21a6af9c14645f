"""Every custom action the domain lists, each a one-line call into api.assistant.flows."""

from __future__ import annotations

from rasa_sdk import Tracker

from actions.base import FlowAction, trailing_fallbacks, user_intents
from api.assistant import flows
from api.assistant.context import BotContext
from api.assistant.replies import BotReply


class ActionGreet(FlowAction):
    action_name = "action_greet"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.greet(ctx)


class ActionExplainWho(FlowAction):
    action_name = "action_explain_who"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.explain_who(ctx)


class ActionExplainCase(FlowAction):
    action_name = "action_explain_case"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.explain_case(ctx)


class ActionListListings(FlowAction):
    action_name = "action_list_listings"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.list_listings(ctx)


class ActionSendNotice(FlowAction):
    action_name = "action_send_notice"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.send_notice(ctx)


class ActionConsequences(FlowAction):
    action_name = "action_consequences"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.consequences(ctx)


class ActionAcknowledge(FlowAction):
    action_name = "action_acknowledge"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.acknowledge(ctx)


class ActionDeadline(FlowAction):
    action_name = "action_deadline"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.deadline(ctx)


class ActionClaimOriginal(FlowAction):
    action_name = "action_claim_original"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.contest(ctx, kind="claim_original")


class ActionDispute(FlowAction):
    action_name = "action_dispute"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.contest(ctx, kind="dispute")


class ActionWrongPerson(FlowAction):
    action_name = "action_wrong_person"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.contest(ctx, kind="wrong_person")


class ActionRemovalDone(FlowAction):
    action_name = "action_removal_done"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.removal(ctx, done=True)


class ActionRemovalPromise(FlowAction):
    action_name = "action_removal_promise"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.removal(ctx, done=False)


class ActionAskAmount(FlowAction):
    action_name = "action_ask_amount"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.ask_amount(ctx)


class ActionCounteroffer(FlowAction):
    action_name = "action_counteroffer"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.counteroffer(ctx)


class ActionInstallments(FlowAction):
    action_name = "action_installments"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.installments(ctx)


class ActionAcceptAgreement(FlowAction):
    action_name = "action_accept_agreement"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.accept(ctx)


class ActionSendPayment(FlowAction):
    action_name = "action_send_payment"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.send_payment(ctx)


class ActionPaymentProblem(FlowAction):
    action_name = "action_payment_problem"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        earlier = user_intents(tracker)[:-1].count("payment_problem")
        return await flows.payment_problem(ctx, earlier_problems=earlier)


class ActionInformPaid(FlowAction):
    action_name = "action_inform_paid"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.inform_paid(ctx)


class ActionAffirm(FlowAction):
    action_name = "action_affirm"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.affirm(ctx)


class ActionDeny(FlowAction):
    action_name = "action_deny"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.deny(ctx)


class ActionInformDocument(FlowAction):
    action_name = "action_inform_document"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.inform_document(ctx)


class ActionHandoffRequested(FlowAction):
    action_name = "action_handoff_requested"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.escalate(ctx, reason="infrator pediu atendimento humano")


class ActionHandoffLawyer(FlowAction):
    action_name = "action_handoff_lawyer"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.escalate(
            ctx, reason="infrator informou advogado/jurídico", lead="utter_lawyer_noted"
        )


class ActionHandoffHostile(FlowAction):
    action_name = "action_handoff_hostile"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.escalate(ctx, reason="mensagem hostil", lead="utter_hostile_calm")


class ActionHandoffDataRequest(FlowAction):
    action_name = "action_handoff_data_request"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.escalate(
            ctx, reason="solicitação de dados pessoais (LGPD)", lead="utter_data_request_noted"
        )


class ActionOptOut(FlowAction):
    action_name = "action_opt_out"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.opt_out(ctx)


class ActionFallback(FlowAction):
    """Both the NLU fallback / out-of-scope rule and Rasa's core fallback land here."""

    action_name = "action_fallback"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.fallback(ctx, consecutive=max(trailing_fallbacks(tracker), 1))


class ActionDefaultFallback(ActionFallback):
    action_name = "action_default_fallback"


class ActionBotChallenge(FlowAction):
    action_name = "action_bot_challenge"

    async def flow(self, ctx: BotContext, tracker: Tracker) -> BotReply:
        return await flows.bot_challenge(ctx)
