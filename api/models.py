"""Every mapped model, imported once so metadata and relationships are complete."""

from api.analysts.models import Analyst
from api.automations.models import AutomationExecution, AutomationRule, ScheduledAction
from api.brands.models import Brand
from api.cases.models import Case, CaseRefCounter, Listing
from api.cases.tags import CaseTag
from api.channels.email.models import ImapCursor
from api.channels.mailboxes.models import Mailbox
from api.channels.numbers.models import WhatsAppNumber
from api.contacts.models import ContactPoint, Infringer
from api.conversations.models import Attachment, Conversation, Message
from api.db import Base
from api.engine.models import ActionExecution, EngineCommand
from api.events.models import EventConsumer, StoredEvent
from api.inbox.models import MatchSuggestion
from api.operations.models import (
    Alert,
    AlertDigest,
    AlertEmail,
    AlertPreference,
    BrandDefaultAnalyst,
    BusinessHoliday,
    OperationsSetting,
)
from api.outbox.models import OutboxItem
from api.payments.models import Installment, PaymentRequest
from api.templates.models import StoredTemplate, TemplateVersion
from api.timeline.models import TimelineEntry

__all__ = [
    "ActionExecution",
    "Alert",
    "AlertDigest",
    "AlertEmail",
    "AlertPreference",
    "Analyst",
    "Attachment",
    "AutomationExecution",
    "AutomationRule",
    "Base",
    "Brand",
    "BrandDefaultAnalyst",
    "BusinessHoliday",
    "Case",
    "CaseRefCounter",
    "CaseTag",
    "ContactPoint",
    "Conversation",
    "EngineCommand",
    "EventConsumer",
    "ImapCursor",
    "Infringer",
    "Installment",
    "Listing",
    "Mailbox",
    "MatchSuggestion",
    "Message",
    "OperationsSetting",
    "OutboxItem",
    "PaymentRequest",
    "ScheduledAction",
    "StoredEvent",
    "StoredTemplate",
    "TemplateVersion",
    "TimelineEntry",
    "WhatsAppNumber",
]

import api.metrics.models
import api.outreach.models
import api.timeline.guards  # noqa: F401  (refuses timeline updates and deletes)
