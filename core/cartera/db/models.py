"""Imports every table module so ``Base.metadata`` is complete (Alembic, tests)."""

from cartera.api.models import IdempotencyRecord
from cartera.audit.models import AuditEntry
from cartera.auth.models import OAuthClient, RevokedToken, SigningKey, UsedAssertion
from cartera.compliance.models import ComplianceDecision, ComplianceSettings
from cartera.db.base import Base
from cartera.erpsync.models import (
    ErpItemPayment,
    ErpPosting,
    ErpSyncCursor,
    ErpSyncRowError,
    ErpSyncRun,
    ErpSyncSeen,
    ErpSyncSettings,
)
from cartera.events.models import DeliveryAttempt, EventDelivery, OutboxEvent, WebhookEndpoint
from cartera.imports.models import ImportRowError, ImportRun
from cartera.integrations.models import (
    Integration,
    WebhookDelivery,
    WebhookEvent,
    WebhookRejection,
)
from cartera.jobs.models import Job
from cartera.messaging.models import (
    Interaction,
    InteractionEvent,
    MessagePartId,
    MessageTemplate,
    OptOutKeyword,
)
from cartera.negotiation.models import Arrangement, Installment, Promise
from cartera.offers.models import Offer, OfferPolicy
from cartera.payments.models import (
    Allocation,
    Payment,
    PaymentLink,
    ReconciliationException,
)
from cartera.portfolio.models import (
    ContactPoint,
    Debtor,
    DebtorBalance,
    DebtorDoc,
    DebtorTag,
    Obligation,
    Portfolio,
    RelatedParty,
)
from cartera.segmentation.models import (
    Placement,
    PlacementMove,
    Segment,
    SegmentRun,
    Stage,
)
from cartera.selfservice.models import SelfServiceLink
from cartera.strategies.models import (
    Action,
    Enrollment,
    PlannerSettings,
    Strategy,
    StrategyVersion,
    Task,
)
from cartera.tenants.models import Tenant

__all__ = [
    "Action",
    "Allocation",
    "Arrangement",
    "AuditEntry",
    "Base",
    "ComplianceDecision",
    "ComplianceSettings",
    "ContactPoint",
    "Debtor",
    "DebtorBalance",
    "DebtorDoc",
    "DebtorTag",
    "DeliveryAttempt",
    "Enrollment",
    "ErpItemPayment",
    "ErpPosting",
    "ErpSyncCursor",
    "ErpSyncRowError",
    "ErpSyncRun",
    "ErpSyncSeen",
    "ErpSyncSettings",
    "EventDelivery",
    "IdempotencyRecord",
    "ImportRowError",
    "ImportRun",
    "Installment",
    "Integration",
    "Interaction",
    "InteractionEvent",
    "Job",
    "MessagePartId",
    "MessageTemplate",
    "OAuthClient",
    "Obligation",
    "Offer",
    "OfferPolicy",
    "OptOutKeyword",
    "OutboxEvent",
    "Payment",
    "PaymentLink",
    "Placement",
    "PlacementMove",
    "PlannerSettings",
    "Portfolio",
    "Promise",
    "ReconciliationException",
    "RelatedParty",
    "RevokedToken",
    "Segment",
    "SegmentRun",
    "SelfServiceLink",
    "SigningKey",
    "Stage",
    "Strategy",
    "StrategyVersion",
    "Task",
    "Tenant",
    "UsedAssertion",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookRejection",
]
