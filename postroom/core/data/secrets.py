"""Encryption of stored passwords with Fernet (cryptography): authenticated, versioned, well reviewed.

The key comes from ``$POSTROOM_SECRET_KEY``, else from ``secret.key`` in the data directory,
created with mode 0600 on first use. Lose the key and the stored passwords must be typed again.

``cryptography`` is imported on the first encryption or decryption, not with this module: its
compiled core holds about 8 MiB of a process's memory (bench/README.md, "Idle worker memory"),
and a process that logs in nowhere with a stored secret (a worker with maildir profiles only,
most CLI commands) never needs it (issue 18).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from postroom.core.contract.errors import UserError
from postroom.core.data.home import data_dir

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

SECRET_KEY_ENV = "POSTROOM_SECRET_KEY"
KEY_FILE_NAME = "secret.key"


def _key_file() -> Path:
    return data_dir() / KEY_FILE_NAME


def load_key() -> bytes:
    """The Fernet key: from the environment, else the key file (created 0600 if missing)."""
    from_env = os.environ.get(SECRET_KEY_ENV)
    if from_env:
        return from_env.strip().encode()
    path = _key_file()
    try:
        if not path.exists():
            from cryptography.fernet import Fernet

            key = Fernet.generate_key()
            # O_EXCL: two processes racing to create the key must not end with two keys.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_bytes().strip()
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
            return key
        return path.read_bytes().strip()
    except OSError as error:
        raise UserError(
            f"The secret key file {path} cannot be used: {error.strerror or error}; "
            f"fix it, or give the key in ${SECRET_KEY_ENV}."
        ) from error


def _fernet() -> Fernet:
    from cryptography.fernet import Fernet

    try:
        return Fernet(load_key())
    except ValueError as error:
        raise UserError(
            f"The secret key (${SECRET_KEY_ENV} or {_key_file()}) is not a valid Fernet key."
        ) from error


def encrypt_password(password: str) -> bytes:
    return _fernet().encrypt(password.encode())


def decrypt_password(token: bytes | None) -> str | None:
    """The clear password, for logging in only; None when none is stored."""
    if token is None:
        return None
    from cryptography.fernet import InvalidToken

    try:
        return _fernet().decrypt(token).decode()
    except InvalidToken as error:
        raise UserError(
            "A stored password cannot be decrypted with the current secret key; "
            "set the right POSTROOM_SECRET_KEY or type the password again with 'profile modify'."
        ) from error
