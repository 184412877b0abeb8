"""Parse inbound mail robustly: one pass over the raw bytes gives what routing, resolving and storing need.

Real mail is often broken: mislabelled charsets, raw 8-bit headers, mbox lines, unindented header
continuations, truncated MIME. Whatever can be salvaged is; only data that is not a mail at all fails.
"""

from __future__ import annotations

import email.policy
import email.utils
import io
import re
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from postroom.core.contract.mail import AttachmentInfo, ParsedMail
from postroom.core.mail.decoding import (
    LINEBREAK,
    decode_bytes,
    decode_header_value,
    label_chain,
    parse_addresses,
    scrub,
)
from postroom.core.mail.large_mail import cut_large_bodies

#: The most semicolons a Content-Type or Content-Disposition may hold. The stdlib reads parameters
#: in time that grows with the square of their number (200 000 empty ones take seconds, as do
#: 100 000 semicolons in one quoted value), so the work is bounded by refusing more before it
#: reads any. Real mail has a handful; a long file name split by RFC 2231 a few dozen.
MAX_PARAMETERS = 1000

#: The most addresses read from one mail's To, Cc or Reply-To (and looked through for its sender).
#: The stdlib reads an address in about 20 microseconds, so 160,000 took seconds; the rest stay in
#: the raw mail, which is kept whole. A list of a few hundred recipients is read in full.
MAX_ADDRESSES = 1000


class _RawPolicy(email.policy.Compat32):
    """compat32 that hands header values back untouched (8-bit bytes still surrogate-escaped).

    compat32 would wrap 8-bit values in ``Header`` objects that lose the bytes; we decode them ourselves.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_NO_HEADER = object()


class _TolerantMessage(EmailMessage):
    """EmailMessage whose parameter lookups survive malformed RFC 2231 parameters (the stdlib raises),
    and find none in a list too long to read (:data:`MAX_PARAMETERS`; the parser's own lookup of a
    multipart boundary comes through here too, so the stdlib never reads such a list)."""

    #: Header name -> its parameters as the stdlib reads them, while :class:`_Walk` reads this part
    #: (None otherwise). The walk asks for a part's charset, file name and name, and the stdlib would
    #: read the whole parameter list anew for each; the headers cannot change while it reads.
    _parameters_read: dict[str, Any] | None = None

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        known = self._parameters_read
        if known is None:
            return super()._get_params_preserve(failobj, header)  # type: ignore[misc]
        key = header.lower()
        if key not in known:
            known[key] = super()._get_params_preserve(_NO_HEADER, header)  # type: ignore[misc]  # raises as before
        found = known[key]
        return failobj if found is _NO_HEADER else found

    def _too_many_parameters(self, header: str) -> bool:
        value = self.get(header)
        return isinstance(value, str) and value.count(";") > MAX_PARAMETERS

    def get_param(
        self, param: str, failobj: Any = None, header: str = "content-type", unquote: bool = True
    ) -> Any:
        if self._too_many_parameters(header):
            return failobj
        try:
            return super().get_param(param, failobj, header, unquote)
        except Exception:  # e.g. TypeError from decode_params on "name*0=a; name*=b"
            return failobj

    def get_params(self, failobj: Any = None, header: str = "content-type", unquote: bool = True) -> Any:
        if self._too_many_parameters(header):
            return failobj
        try:
            return super().get_params(failobj, header, unquote)
        except Exception:
            return failobj


# The tree is parsed with compat32 semantics (raw header strings, the classic lenient parameter parser,
# no header objects built while parsing: about 2.5 times faster than policy.default), into
# EmailMessage objects that are switched to policy.default afterwards for filters to use.
_PARSE_POLICY = _RawPolicy(message_factory=_TolerantMessage)
_COMPAT32 = email.policy.compat32

# Mails with none of these headers are taken to be something else (a picture, a text file).
_MAIL_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "received",
        "return-path",
        "mime-version",
        "content-type",
        "sender",
        "reply-to",
        "delivered-to",
        "in-reply-to",
        "references",
    }
)
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")
_HEAD_END = re.compile(rb"\n\r*\n")
_MSG_ID = re.compile(r"<([^<>]*)>")
_PARAMETER_HEADERS = frozenset({"content-type", "content-disposition"})
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([-\w.:]+)""", re.IGNORECASE)


class MailParseError(Exception):
    """The data is not a usable mail; the message is one sentence saying why."""


def _first_entries(value: str, most: int) -> tuple[str, bool]:
    """The start of an address header up to its ``most``-th comma, and whether anything was left out.

    Commas are counted in C, quotes and comments ignored: a header is cut only when it holds more
    commas than a mail has recipients, and a cut inside a quoted name loses one entry, never time.
    """
    if most < 1:
        return "", True
    if value.count(",") < most:
        return value, False
    end = -1
    for _ in range(most):
        end = value.find(",", end + 1)
    return value[:end], True


def _address_list(name: str, values: list[str], hints: tuple[str, ...], defects: list[str]) -> list[str]:
    """The addresses of one kind of address header, de-duplicated; at most :data:`MAX_ADDRESSES`."""
    found: dict[str, None] = {}
    for number, value in enumerate(values):
        head, cut = _first_entries(value, MAX_ADDRESSES - len(found))
        for _display, addr in parse_addresses(head, hints):
            if addr and len(found) < MAX_ADDRESSES:
                found[addr] = None
        if cut or (len(found) >= MAX_ADDRESSES and number + 1 < len(values)):
            defects.append(f"more than {MAX_ADDRESSES} {name} addresses; only the first {MAX_ADDRESSES} read")
            break
    return list(found)


def _sender(index: dict[str, list[str]], hints: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The sender: the first From address with a domain, else Reply-To, Sender, Return-Path, else any From."""
    for name in ("from", "reply-to", "sender", "return-path"):
        for value in index.get(name, ()):
            for display, addr in parse_addresses(_first_entries(value, MAX_ADDRESSES)[0], hints):
                if "@" in addr:
                    return addr, display or None
    for value in index.get("from", ()):
        for display, addr in parse_addresses(_first_entries(value, MAX_ADDRESSES)[0], hints):
            if addr:
                return addr, display or None
    return None, None


def _message_ids(value: str | None) -> list[str]:
    """Message-IDs in a header: <bracketed> ids, else bare tokens that look like ids."""
    if not value:
        return []
    found = ["".join(m.split()) for m in _MSG_ID.findall(value)]
    if not found:
        found = [token.strip("<>") for token in value.split() if "@" in token]
    return list(dict.fromkeys(i for i in found if i))


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(LINEBREAK.sub("", value).strip())
        if parsed.tzinfo is None:  # "-0000" or no zone: the zone is unknown (RFC 5322); UTC is our best guess
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):  # garbage, or a year UTC cannot hold
        return None


def _repair(raw: bytes) -> tuple[bytes, list[str]]:
    """Fix what would make the stdlib misread the top-level header block; return the bytes and the fixes."""
    notes: list[str] = []
    if b"\x00" in raw:
        raw = raw.replace(b"\x00", b"")
        notes.append("NUL bytes removed")
    # A byte-order mark or blank lines before the first header would hide every header.
    raw = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not raw:
        raise MailParseError("The mail is empty." if not notes else "The mail holds nothing but NUL bytes.")
    match = _HEAD_END.search(raw)
    end = match.start() + 1 if match else len(raw)
    head = raw[:end]  # the body is sliced off only when something changes: it can be 25 MB
    lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
    tail = lines.pop() if head.endswith(b"\n") else None
    changed = b"\r\r" in head  # "\r\r\n" would read as an empty line and end the headers early
    if lines and lines[0].startswith((b"From ", b">From ")):
        changed = True
        if _HEADER_LINE.match(lines[0]):  # "From : x" is a header the stdlib would take for an mbox line
            lines[0] = b"From:" + lines[0].split(b":", 1)[1]
        else:
            del lines[0]
            notes.append("mbox From line removed")
    is_header = [bool(_HEADER_LINE.match(line)) for line in lines]
    skip = 0
    while skip < min(3, len(lines)) and not is_header[skip]:
        skip += 1
    if 0 < skip < len(lines) and is_header[skip]:
        del lines[:skip], is_header[:skip]
        changed = True
        notes.append(f"{skip} line(s) before the headers removed")
    last_header = max((i for i, flag in enumerate(is_header) if flag), default=0)
    for i in range(1, last_header):
        if not is_header[i] and lines[i][:1] not in (b" ", b"\t"):
            lines[i] = b" " + lines[i]
            changed = True
            if "unindented header continuation repaired" not in notes:
                notes.append("unindented header continuation repaired")
    if not changed:
        return raw, notes
    return b"\n".join(lines) + (b"\n" if tail is not None else b"") + raw[end:], notes


def _check_parameter_lists(root: Message) -> None:
    """Refuse a mail with a part whose parameter list is too long to read in bounded time."""
    stack = [root]
    while stack:
        part = stack.pop()
        for key, value in part.raw_items():
            name = key.strip().lower()
            if name in _PARAMETER_HEADERS and value.count(";") > MAX_PARAMETERS:
                raise MailParseError(
                    f"The mail's {key.strip()} header has more than {MAX_PARAMETERS} parameters,"
                    " too many to read."
                )
        stack.extend(_subparts(part))


def _subparts(part: Message) -> list[Message]:
    """The parts inside a multipart or message/* part (an empty list for a leaf)."""
    if not part.is_multipart():  # get_payload() of a leaf may decode, and can raise doing so
        return []
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _embedded_size(part: Message) -> int:
    """Size of an attached mail (or delivery report) as it would be saved."""
    buffer = io.BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, policy=_COMPAT32)
    for sub in _subparts(part):
        generator.flatten(sub)
    return len(buffer.getvalue())


class _Walk:
    """One pass over the MIME tree: body texts, attachments, declared charsets, defects."""

    def __init__(self, cut_out: dict[bytes, int] | None = None) -> None:
        #: Markers of bodies cut out of a large mail (large_mail.py) and their real decoded sizes.
        self.cut_out = cut_out or {}
        self.text: list[str] = []
        self.html: list[str] = []
        self.attachments: list[AttachmentInfo] = []
        self.charsets: list[str] = []
        self.defects: list[str] = []

    def run(self, root: Message) -> None:
        stack = [root]
        while stack:
            part = stack.pop()
            ctype = "?"
            if isinstance(part, _TolerantMessage):
                part._parameters_read = {}
            try:
                ctype = part.get_content_type()
                if part.is_multipart():
                    if ctype.startswith("multipart/"):
                        stack.extend(reversed(_subparts(part)))
                    else:
                        self._embedded(part, ctype)
                else:
                    self._leaf(part, ctype)
            except Exception as error:  # the stdlib raises many kinds on malformed parts; salvage the rest
                self.defects.append(f"unreadable {ctype} part: {type(error).__name__}: {error}")

    def _leaf(self, part: Message, ctype: str) -> None:
        maintype, _, subtype = ctype.partition("/")
        charset = part.get_content_charset()
        if charset and maintype == "text":
            self.charsets.append(charset)
        filename = part.get_filename()
        if filename is not None:
            filename = decode_header_value(filename, tuple(self.charsets[:1]))
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        is_body = (maintype == "text" and subtype in ("plain", "html")) or maintype == "multipart"
        if is_body and not filename and part.get_content_disposition() != "attachment":
            if charset is None and subtype == "html":
                meta = _META_CHARSET.search(data, 0, 4096)
                charset = meta.group(1).decode("ascii") if meta else None
            body = scrub(decode_bytes(data, label_chain(charset or "us-ascii")))
            (self.html if subtype == "html" else self.text).append(body.replace("\r\n", "\n"))
            return
        self.attachments.append(AttachmentInfo(filename or None, ctype, self.cut_out.get(data, len(data))))

    def _embedded(self, part: Message, ctype: str) -> None:
        name = part.get_filename()
        if name is not None:
            name = decode_header_value(name, tuple(self.charsets[:1]))
        elif ctype == "message/rfc822":
            inner = _subparts(part)[:1]
            raw_subject = next((v for m in inner for k, v in m.raw_items() if k.lower() == "subject"), "")
            subject = decode_header_value(raw_subject, tuple(self.charsets[:1])).strip()
            name = f"{subject}.eml" if subject else None
        try:
            size = _embedded_size(part)
        except Exception as error:  # a broken attached mail that cannot be re-serialised
            self.defects.append(f"size of attached {ctype} unknown: {type(error).__name__}")
            size = 0
        self.attachments.append(AttachmentInfo(name or None, ctype, size))


def _switch_to_default_policy(root: Message, defects: list[str]) -> None:
    """Give filters policy.default behaviour on every part, and collect the parser's defects."""
    stack = [root]
    while stack:
        part = stack.pop()
        part.policy = email.policy.default
        if isinstance(part, _TolerantMessage):
            part._parameters_read = None  # filters may change headers: their parameters are read anew
        defects.extend(type(defect).__name__ for defect in part.defects)
        stack.extend(_subparts(part))


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse one raw mail. Raises MailParseError only when the data is not a usable mail."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MailParseError("The mail is not bytes.")
    raw = bytes(raw)
    fixed, notes = _repair(raw)
    fixed, cut_out = cut_large_bodies(fixed)
    try:
        message = BytesParser(policy=_PARSE_POLICY).parsebytes(fixed)
    except RecursionError as error:
        raise MailParseError("The mail's MIME parts are nested too deeply to read.") from error
    except Exception as error:  # the parser is meant never to raise; if it does, the mail is unusable
        raise MailParseError(f"The mail could not be parsed ({type(error).__name__}: {error}).") from error
    index: dict[str, list[str]] = {}
    for key, value in message.raw_items():
        index.setdefault(key.strip().lower(), []).append(value)
    if not _MAIL_HEADERS.intersection(index):
        raise MailParseError("The data is not a mail: it has no mail headers.")
    _check_parameter_lists(message)
    walk = _Walk(cut_out)
    del fixed  # a repaired copy of a big mail need not live on
    walk.run(message)
    try:
        top_charset = message.get_content_charset()
    except Exception:  # an unreadable charset parameter is only a hint lost
        top_charset = None
    hints = tuple(dict.fromkeys([*([top_charset] if top_charset else []), *walk.charsets[:1]]))

    def first(name: str) -> str | None:
        values = index.get(name)
        return values[0] if values else None

    from_address, from_name = _sender(index, hints)
    auto = decode_header_value(first("auto-submitted") or "", hints).strip().lower()
    in_reply_to = _message_ids(first("in-reply-to"))
    message_id = _message_ids(first("message-id")) or _message_ids_bare(first("message-id"))
    defects = [*notes, *walk.defects]
    to = _address_list("To", index.get("to", []), hints, defects)
    cc = _address_list("Cc", index.get("cc", []), hints, defects)
    reply_to = _address_list("Reply-To", index.get("reply-to", []), hints, defects)
    _switch_to_default_policy(message, defects)
    return ParsedMail(
        raw=raw,
        message_id=message_id[0] if message_id else None,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_message_ids(" ".join(index.get("references", []))),
        from_address=from_address,
        from_name=from_name,
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=decode_header_value(first("subject") or "", hints).strip(),
        date=_date(first("date")),
        auto_submitted=auto or None,
        text="\n".join(walk.text) if walk.text else None,
        html="\n".join(walk.html) if walk.html else None,
        attachments=walk.attachments,
        defects=defects,
        headers=message,
        charset_hints=hints,
        decode_header=decode_header_value,
    )


def _message_ids_bare(value: str | None) -> list[str]:
    """A Message-ID header without brackets or '@' is still the id the sender chose."""
    cleaned = "".join((value or "").split()).strip("<>")
    return [cleaned] if cleaned else []
