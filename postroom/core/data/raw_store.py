"""Writing the raw bytes of a batch of mails: one statement per batch, without copies of big mails.

On PostgreSQL (psycopg2) the bytes are streamed with a binary ``COPY ... FROM STDIN``: passed as
a parameter, a mail is escaped into a query string about four times its size (a 25 MB mail would
cost 100 MB more memory) and the server has to parse that text back. On SQLite big mails go in
through blob I/O for the same reason; otherwise one executemany INSERT serves the batch.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.orm import Session

from postroom.core.data.models import MessageRaw

#: Bytes handed to the database driver at a time.
CHUNK = 512 * 1024
#: From this size on, SQLite gets a mail through blob I/O rather than as a parameter.
BIG = 1024 * 1024
# COPY's binary format: a signature, flags and header-extension length, then per row the field
# count and each field as a 4-byte length and its bytes, and -1 as the trailer.
_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
#: Two fields; the first is message_pk, a bigint (8 bytes) as the schema makes it on PostgreSQL.
_ROW = struct.Struct("!hiqi")


class _BinaryCopy(io.RawIOBase):
    """The rows of a binary COPY into message_raw, produced piece by piece as psycopg2 reads them."""

    def __init__(self, rows: Sequence[tuple[int, bytes]]) -> None:
        self._pieces = self._generate(rows)
        self._pending = memoryview(b"")

    @staticmethod
    def _generate(rows: Sequence[tuple[int, bytes]]) -> Iterator[bytes | memoryview]:
        yield _HEADER
        for message_pk, raw in rows:
            yield _ROW.pack(2, 8, message_pk, len(raw))
            view = memoryview(raw)
            for start in range(0, len(view), CHUNK):
                yield view[start : start + CHUNK]
        yield _TRAILER

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """At most ``size`` bytes; small pieces are joined, big ones are cut, nothing is copied twice."""
        parts: list[bytes | memoryview] = []
        wanted = CHUNK if size < 0 else size
        while wanted > 0:
            if not self._pending:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._pending = memoryview(piece)
            part, self._pending = self._pending[:wanted], self._pending[wanted:]
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)


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
                f"COPY {MessageRaw.__tablename__} (message_pk, raw) FROM STDIN WITH (FORMAT binary)",
                _BinaryCopy(rows),
                size=CHUNK,
            )
        return
    if dialect.name == "sqlite":
        _insert_sqlite(session, connection.connection.dbapi_connection, rows)
        return
    session.execute(insert(MessageRaw), [{"message_pk": pk, "raw": raw} for pk, raw in rows])


def _insert_sqlite(session: Session, dbapi_connection: Any, rows: Sequence[tuple[int, bytes]]) -> None:
    """Small mails in one executemany; a big one as a zeroblob filled in chunks through blob I/O.

    Bound as a parameter, SQLite copies a blob once to bind it and once more to build the row.
    """
    small = [{"message_pk": pk, "raw": raw} for pk, raw in rows if len(raw) < BIG]
    if small:
        session.execute(insert(MessageRaw), small)
    for message_pk, raw in rows:
        if len(raw) < BIG:
            continue
        session.execute(insert(MessageRaw).values(message_pk=message_pk, raw=func.zeroblob(len(raw))))
        # message_pk is the table's INTEGER PRIMARY KEY, so it is the rowid blobopen asks for.
        with dbapi_connection.blobopen(MessageRaw.__tablename__, "raw", message_pk) as blob:
            view = memoryview(raw)
            for start in range(0, len(view), CHUNK):
                blob.write(view[start : start + CHUNK])
