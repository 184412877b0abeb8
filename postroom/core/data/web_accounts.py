"""The console's accounts as rows: names, roles, agents' queues, open sessions, failed sign-ins, the
session key.

Shared by the console (``postroom.web``) and ``postroom web user ...``. Passwords arrive here already
hashed: the hashing (Argon2) is ``postroom.web.users``'s, so that nothing here needs the web stack.
"""

from __future__ import annotations

import hashlib
import secrets as random_tokens
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from postroom.core.contract.errors import NotFoundError, UserError
from postroom.core.data.models import (
    Campaign,
    EngineSetting,
    Queue,
    SignInFailure,
    WebRole,
    WebSession,
    WebUser,
    utcnow,
)
from postroom.core.data.secrets import decrypt_password, encrypt_password
from postroom.core.data.validation import check_single_line

#: The longest account name (the column's width).
NAME_MAX = 64
#: Failed sign-ins allowed per name and per client address within :data:`FAILURE_WINDOW`.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=10)
#: How long a sign-in lasts (the session cookie's lifetime too).
SESSION_LIFETIME = timedelta(hours=12)
#: EngineSetting row holding the console's session-signing key, encrypted with the home's secret key.
SESSION_KEY_SETTING = "web-session-key"


def check_name(name: str) -> str:
    name = check_single_line(name, "account name").strip()
    if not name:
        raise UserError("A console account needs a name.")
    if len(name) > NAME_MAX:
        raise UserError(f"A console account name is at most {NAME_MAX} characters, not {len(name)}.")
    return name


def check_role(role: str) -> WebRole:
    try:
        return WebRole(role)
    except ValueError:
        raise UserError(
            f"There is no role {role!r}; a console account is an 'operator' or an 'agent'."
        ) from None


def find_queue(session: Session, contact_center_id: int, spec: str) -> Queue:
    """A queue named ``CAMPAIGN/QUEUE``, or by its name alone when only one campaign has a queue so named."""
    campaign_name, slash, queue_name = spec.rpartition("/")
    query = select(Queue).join(Campaign).where(Campaign.contact_center_id == contact_center_id)
    query = query.where(Queue.name == queue_name)
    if slash:
        query = query.where(Campaign.name == campaign_name)
    found = list(session.scalars(query))
    if not found:
        raise NotFoundError(f"There is no queue {spec!r}; see 'postroom queue list'.")
    if len(found) > 1:
        raise UserError(f"Several campaigns have a queue named {spec!r}; name it as CAMPAIGN/QUEUE.")
    return found[0]


def add_user(session: Session, name: str, password_hash: str, role: str, queues: list[Queue]) -> WebUser:
    name = check_name(name)
    checked = check_role(role)
    if checked is WebRole.OPERATOR and queues:
        raise UserError("An operator sees every queue; give --queue to agents only.")
    if session.scalar(select(WebUser.id).where(WebUser.name == name)):
        raise UserError(f"A console account named {name!r} already exists.")
    user = WebUser(
        name=name, password_hash=password_hash, role=checked.value, created_at=utcnow(), disabled=False
    )
    user.queues = queues
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # another process added the same name meanwhile
        raise UserError(f"A console account named {name!r} already exists.") from None
    return user


def find_user(session: Session, name: str) -> WebUser | None:
    return session.scalar(select(WebUser).where(WebUser.name == name).options(selectinload(WebUser.queues)))


def get_user(session: Session, name: str) -> WebUser:
    user = find_user(session, name)
    if user is None:
        raise NotFoundError(f"There is no console account named {name!r}; see 'postroom web user list'.")
    return user


def remove_user(session: Session, name: str) -> None:
    user = get_user(session, name)
    close_user_sessions(session, user.id)
    session.delete(user)
    session.flush()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, user: WebUser) -> str:
    """A new sign-in of ``user``: the token for the cookie (only its digest is stored)."""
    token = random_tokens.token_urlsafe(32)
    session.add(WebSession(token_digest=_digest(token), web_user_id=user.id, created_at=utcnow()))
    session.execute(delete(WebSession).where(WebSession.created_at < utcnow() - SESSION_LIFETIME))
    return token


def session_user(session: Session, token: str) -> WebUser | None:
    """The enabled account signed in with ``token``, unless that sign-in ended or expired."""
    row = session.get(WebSession, _digest(token))
    if row is None or row.created_at < utcnow() - SESSION_LIFETIME:
        return None
    user = session.get(WebUser, row.web_user_id)
    return None if user is None or user.disabled else user


def close_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_digest == _digest(token)))


def close_user_sessions(session: Session, user_id: int) -> None:
    """End every sign-in of an account (a new password, a removed account)."""
    session.execute(delete(WebSession).where(WebSession.web_user_id == user_id))


def list_users(session: Session) -> list[WebUser]:
    return list(session.scalars(select(WebUser).options(selectinload(WebUser.queues)).order_by(WebUser.name)))


def record_failure(session: Session, name: str, client: str) -> None:
    session.add(SignInFailure(at=utcnow(), name=name[:NAME_MAX], client=client[:64]))


def too_many_failures(session: Session, name: str, client: str) -> bool:
    """Whether ``name`` or ``client`` has had :data:`MAX_FAILURES` failed sign-ins within the window."""
    since = utcnow() - FAILURE_WINDOW

    def count(column: InstrumentedAttribute[str], value: str) -> int:
        query = select(func.count()).where(SignInFailure.at >= since, column == value)
        return session.scalar(query) or 0

    return count(SignInFailure.name, name[:NAME_MAX]) >= MAX_FAILURES or (
        count(SignInFailure.client, client[:64]) >= MAX_FAILURES
    )


def forget_old_failures(session: Session) -> None:
    """Drop failures older than the window: they no longer count."""
    session.execute(delete(SignInFailure).where(SignInFailure.at < utcnow() - FAILURE_WINDOW))


def session_key(session: Session) -> str:
    """The console's session-signing key: made once, stored encrypted with the home's secret key
    (``core/data/secrets.py``), the same for every ``postroom web`` on this database. Never printed."""
    row = session.get(EngineSetting, SESSION_KEY_SETTING)
    if row is None:
        key = random_tokens.token_urlsafe(48)
        try:
            with session.begin_nested():
                session.add(EngineSetting(name=SESSION_KEY_SETTING, value=encrypt_password(key).decode()))
        except IntegrityError:  # another process made it first: use theirs
            row = session.get(EngineSetting, SESSION_KEY_SETTING)
            assert row is not None
        else:
            return key
    clear = decrypt_password(row.value.encode())
    assert clear is not None
    return clear
