"""Writing the raw bytes of a batch of mails: one statement per batch, without copies of big mails.

On PostgreSQL (psycopg2) the bytes are streamed with ``COPY ... FROM STDIN`` in small hex chunks:
a parameter would be escaped into a query string about four times the mail's size, and a 25 MB
mail would cost 100 MB of memory more. Elsewhere one executemany INSERT serves the batch.
"""

from __future__ import annotations

import binascii
import io
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from postroom.core.models import MessageRaw

#: Bytes of a mail turned into hex at a time; also the size of the chunks psycopg2 sends.
CHUNK = 256 * 1024


class _CopyText(io.RawIOBase):
    """The rows ``message_pk <TAB> \\\\x<hex>`` of COPY's text format, produced as psycopg2 reads them."""

    def __init__(self, rows: Sequence[tuple[int, bytes]]) -> None:
        self._pieces = self._generate(rows)
        self._pending = b""

    @staticmethod
    def _generate(rows: Sequence[tuple[int, bytes]]) -> Iterator[bytes]:
        for message_pk, raw in rows:
            # "\\x" is bytea's hex input; the backslash is doubled because COPY text escapes it.
            yield b"%d\t\\\\x" % message_pk
            view = memoryview(raw)
            for start in range(0, len(view), CHUNK):
                yield binascii.hexlify(view[start : start + CHUNK])
            yield b"\n"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._pending += piece
        if size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def insert_raws(session: Session, rows: Sequence[tuple[int, bytes]]) -> None:
    """Store ``(message_pk, raw)`` pairs in ``message_raw`` within the session's transaction."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg2":
        dbapi_connection: Any = connection.connection.dbapi_connection
        with dbapi_connection.cursor() as cursor:
            cursor.copy_expert(
                f"COPY {MessageRaw.__tablename__} (message_pk, raw) FROM STDIN",
                _CopyText(rows),
                size=CHUNK * 2,
            )
        return
    session.execute(insert(MessageRaw), [{"message_pk": pk, "raw": raw} for pk, raw in rows])
