"""postroom's SQLAlchemy models, split by area; import them from here."""

from __future__ import annotations

from postroom.core.data.models.base import (
    Base,
    Direction,
    LedgerOutcome,
    MessageStatus,
    ProfileStatus,
    SendState,
    TicketState,
    utcnow,
)
from postroom.core.data.models.directory import (
    Agent,
    Campaign,
    ContactCenter,
    Customer,
    CustomerEmail,
    Queue,
    agent_media_profile,
    campaign_media_profile,
    queue_media_profile,
)
from postroom.core.data.models.oauth import OAuthGrant
from postroom.core.data.models.outbox import FailedMessageSendInfo, SMessageSendInfo
from postroom.core.data.models.profiles import (
    EngineSetting,
    IcConfigurationParameter,
    MediaProfile,
    MediaProfileConfiguration,
    MediaProfileResolver,
    PluginSwitch,
    ProtocolState,
)
from postroom.core.data.models.tickets import (
    FetchLedger,
    Message,
    MessageAddress,
    MessageRaw,
    RoutingRule,
    Ticket,
    TicketAttribute,
)
from postroom.core.data.models.web import (
    AuditLog,
    SignInFailure,
    WebRole,
    WebSession,
    WebTicketRead,
    WebUser,
    web_user_queue,
)

__all__ = [
    "Agent",
    "AuditLog",
    "Base",
    "Campaign",
    "ContactCenter",
    "Customer",
    "CustomerEmail",
    "Direction",
    "EngineSetting",
    "FailedMessageSendInfo",
    "FetchLedger",
    "IcConfigurationParameter",
    "LedgerOutcome",
    "MediaProfile",
    "MediaProfileConfiguration",
    "MediaProfileResolver",
    "Message",
    "MessageAddress",
    "MessageRaw",
    "MessageStatus",
    "OAuthGrant",
    "PluginSwitch",
    "ProfileStatus",
    "ProtocolState",
    "Queue",
    "RoutingRule",
    "SMessageSendInfo",
    "SendState",
    "SignInFailure",
    "Ticket",
    "TicketAttribute",
    "TicketState",
    "WebRole",
    "WebSession",
    "WebTicketRead",
    "WebUser",
    "agent_media_profile",
    "campaign_media_profile",
    "queue_media_profile",
    "utcnow",
    "web_user_queue",
]
