"""The console's account store: create, set a password, remove, verify, with Argon2id (argon2-cffi).

The hashes carry their own parameters; when argon2-cffi's defaults change, a successful sign-in
re-hashes the password with the new ones (``check_needs_rehash``). Every change is audited in the same
transaction. This module imports no Flask: ``postroom web user ...`` uses it without the web stack.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from postroom.core.contract.errors import UserError
from postroom.core.data import audit, web_accounts
from postroom.core.data.models import WebUser

#: Shortest and longest password accepted.
PASSWORD_MIN = 8
PASSWORD_MAX = 1024

_hasher = PasswordHasher()
#: Verified against when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash("postroom-no-such-account")


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise UserError(f"A console password needs at least {PASSWORD_MIN} characters.")
    if len(password) > PASSWORD_MAX:
        raise UserError(f"A console password is at most {PASSWORD_MAX} characters.")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(check_password(password))


def create_user(
    session: Session,
    actor: str,
    name: str,
    password: str,
    role: str,
    queue_specs: list[str],
    contact_center_id: int,
) -> WebUser:
    """Add an account (queues as ``CAMPAIGN/QUEUE`` or a unique queue name) and audit it."""
    web_accounts.check_name(name)
    web_accounts.check_role(role)
    queues = [web_accounts.find_queue(session, contact_center_id, spec) for spec in queue_specs]
    user = web_accounts.add_user(session, name, hash_password(password), role, queues)
    detail = {"role": user.role, "queues": [f"{q.campaign.name}/{q.name}" for q in user.queues]}
    audit.record(session, actor, "web-user.add", user.name, detail)
    return user


def set_password(session: Session, actor: str, name: str, password: str) -> None:
    user = web_accounts.get_user(session, name)
    user.password_hash = hash_password(password)
    web_accounts.close_user_sessions(session, user.id)
    audit.record(session, actor, "web-user.passwd", user.name, {})


def set_disabled(session: Session, actor: str, name: str, disabled: bool) -> bool:
    """Disable an account (its sessions end, sign-in is refused) or enable it again; audited.

    Returns False, recording nothing, when the account already was so.
    """
    user = web_accounts.get_user(session, name)
    if user.disabled == disabled:
        return False
    user.disabled = disabled
    if disabled:
        web_accounts.close_user_sessions(session, user.id)
    audit.record(session, actor, "web-user.disable" if disabled else "web-user.enable", user.name, {})
    return True


def remove_user(session: Session, actor: str, name: str) -> None:
    web_accounts.remove_user(session, name)
    audit.record(session, actor, "web-user.remove", name, {})


def verify(session: Session, name: str, password: str) -> WebUser | None:
    """The enabled account ``name`` if ``password`` is its password, else None (re-hashed when due)."""
    user = web_accounts.find_user(session, name)
    if user is None or user.disabled:
        _matches(_DUMMY_HASH, password)
        return None
    if not _matches(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
