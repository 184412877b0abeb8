"""Outgoing MIME: the text and HTML parts of a reply, the quoted mail, and headers that never carry CR/LF."""

from __future__ import annotations

import email.policy
import html
import re
from collections.abc import Iterable
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from postroom.core.contract.errors import UserError
from postroom.core.mail.addresses import address_problem, local_text, split_address
from postroom.core.mail.encoded_words import fold_text

if TYPE_CHECKING:
    from postroom.core.contract.drafts import OutgoingDraft
    from postroom.core.data.models import Message

#: Serialises with CRLF and refuses CR or LF inside a header value (``ValueError``).
SMTP_POLICY = email.policy.SMTP
#: Set on every mail postroom sends; the inbound auto-reply filter treats it as automatic.
LOOP_HEADER = "X-Postroom-Loop"
#: How much of the answered mail is quoted; a long thread is already quoted inside it.
QUOTE_LIMIT = 20_000
#: How many Message-IDs the References header keeps (the first and the newest ones, RFC 5322 §3.6.4).
REFERENCES_LIMIT = 20
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except the colon
_MIME_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")  # RFC 2045 token: no tspecials
_LINE_BREAKS = re.compile(r"[\r\n]+")


class _TextExtractor(HTMLParser):
    """Readable plain text from HTML: block elements become line breaks, links keep their target."""

    _BREAKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._link: tuple[str, int] | None = None  # (href, index of the link's first text part)
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")
        elif tag == "a" and attributes.get("href"):
            self._link = (attributes["href"] or "", len(self.parts))
        elif tag == "img" and attributes.get("alt"):
            self.parts.append(attributes["alt"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)
        elif tag in ("p", "div", "blockquote"):
            self.parts.append("\n")
        elif tag == "a" and self._link is not None:
            href, start = self._link
            target = href.removeprefix("mailto:")
            if "".join(self.parts[start:]).strip() != target:
                self.parts.append(f" <{target}>")
            self._link = None

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(" ".join(data.split("\n")))


def html_to_text(markup: str) -> str:
    """Plain text for the text part of a mail whose content exists only as HTML (a signature, a quote)."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def text_to_html(text: str) -> str:
    """Escaped HTML of plain text, its line breaks kept."""
    return html.escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")


def quote(answered: Message | None) -> tuple[str, str]:
    """The answered mail as ``> `` quoted text and as an HTML blockquote (its HTML sanitised)."""
    if answered is None:
        return "", ""
    text = (answered.text_body or "").strip() or html_to_text(answered.html_body or "")
    text = text[:QUOTE_LIMIT]
    name, address = answered.from_name or "", answered.from_address or ""
    # formataddr refuses an internationalised address (it encodes to ASCII); the quote is text anyway.
    sender = formataddr((name, address)) if address.isascii() else f"{name} <{address}>".strip()
    when = answered.sent_date or answered.created_at
    intro = f"On {when.strftime('%a, %d %b %Y %H:%M')}, {sender} wrote:" if when else f"{sender} wrote:"
    quote_text = intro + "\n" + "\n".join(f"> {line}".rstrip() for line in text.splitlines())
    if answered.html_body:
        import nh3  # here, not at the top: only composing a reply needs the sanitiser (issue 18)

        body_html = nh3.clean(answered.html_body[:QUOTE_LIMIT])
    else:
        body_html = text_to_html(text)
    quote_html = (
        f"<div>{html.escape(intro)}</div>\n"
        f'<blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">'
        f"{body_html}</blockquote>"
    )
    return quote_text, quote_html


def assemble_text(draft: OutgoingDraft) -> str:
    """The text part: the agent's words, then signature and quote in the profile's order."""
    tail = [draft.signature_text, draft.quote_text]
    if draft.signature_position == "after":
        tail.reverse()
    return "\n\n".join(part.strip("\n") for part in [draft.text.rstrip(), *tail] if part.strip()) + "\n"


def assemble_html(draft: OutgoingDraft) -> str:
    signature = (
        f'<div class="postroom-signature">{draft.signature_html}</div>' if draft.signature_html else ""
    )
    quoted = f'<div class="postroom-quote">{draft.quote_html}</div>' if draft.quote_html else ""
    tail = [signature, quoted] if draft.signature_position != "after" else [quoted, signature]
    body = "\n<br>\n".join(part for part in [f"<div>{draft.html}</div>", *tail] if part)
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n{body}\n</body></html>\n'


# --- building the MIME message ---------------------------------------------------------------------


def header_text(value: str) -> str:
    """Free text (subject, display names): line breaks folded to blanks, never passed through; NUL
    removed (no header may carry one, RFC 5322, and the customer's server may cut the mail there)."""
    return " ".join(_LINE_BREAKS.sub(" ", value.replace("\x00", "")).split())


def _address(value: str, what: str) -> Address:
    """One bare address, refused when it carries a line break or is not one address."""
    if _LINE_BREAKS.search(value):
        raise UserError(f"The {what} address contains a line break; postroom does not send it.")
    # Checked here rather than by Address(addr_spec=...), which refuses internationalised local parts.
    problem = address_problem(value.strip())
    parts = split_address(value.strip())
    if problem or parts is None:
        raise UserError(f"The {what} address {value.strip()!r} is not one valid email address: {problem}.")
    try:
        return Address(username=local_text(parts[0]), domain=parts[1])
    except (ValueError, IndexError, HeaderParseError) as error:  # the parser's own error is no ValueError
        raise UserError(f"The {what} address {value.strip()!r} is not one valid email address.") from error


def _ids(values: Iterable[str]) -> str:
    return " ".join(f"<{v.strip('<> ')}>" for v in values if v and v.strip("<> "))


def references(in_reply_to: str | None, earlier: list[str]) -> list[str]:
    ids = list(dict.fromkeys([*earlier, *([in_reply_to] if in_reply_to else [])]))
    if len(ids) > REFERENCES_LIMIT:
        ids = [ids[0], *ids[-(REFERENCES_LIMIT - 1) :]]
    return ids


def build_message(draft: OutgoingDraft) -> EmailMessage:
    """The MIME message of a draft: text and HTML alternatives, then any attachments (multipart/mixed).

    Header values never carry CR/LF.

    Free-text values (subject, names) are folded onto one line; an address or extra header with
    a line break is refused with a :class:`UserError` naming it.
    """
    addresses = [draft.from_address, *draft.to, *draft.cc, draft.reply_to or ""]
    # Non-ASCII addresses can only travel as SMTPUTF8 (RFC 6532), which the smtp sender then asks for.
    policy = SMTP_POLICY if all(a.isascii() for a in addresses) else email.policy.SMTPUTF8
    message = EmailMessage(policy=policy)
    sender = _address(draft.from_address, "send-from")
    message["From"] = Address(header_text(draft.from_name or ""), addr_spec=sender.addr_spec)
    message["To"] = [_address(a, "To") for a in draft.to]
    if draft.cc:
        message["Cc"] = [_address(a, "Cc") for a in draft.cc]
    if draft.reply_to:
        message["Reply-To"] = _address(draft.reply_to, "Reply-To")
    # Folded here, not by the policy, whose folding can lose a blank between two encoded words.
    message.set_raw("Subject", fold_text("Subject", header_text(draft.subject)))
    message["Date"] = format_datetime(draft.date)
    message["Message-ID"] = _ids([draft.message_id])
    if draft.in_reply_to:
        message["In-Reply-To"] = _ids([draft.in_reply_to])
    if draft.references:
        message["References"] = _ids(draft.references)
    message[LOOP_HEADER] = f"ticket={draft.ticket_id}; profile={draft.profile_id}"
    if draft.automatic:
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    for name, value in draft.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise UserError(f"{name!r} is not a valid header name.")
        try:
            message[name] = value
        except ValueError as error:
            raise UserError(f"The {name} header contains a line break; postroom does not send it.") from error
    message.set_content(assemble_text(draft))
    message.add_alternative(assemble_html(draft), subtype="html")
    for attachment in draft.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not (_MIME_TOKEN.fullmatch(maintype) and _MIME_TOKEN.fullmatch(subtype)):
            maintype, subtype = "application", "octet-stream"
        # The policy writes a non-ASCII name as RFC 2231 parameters; a line break never gets in.
        filename = header_text(attachment.filename.replace("/", "_").replace("\\", "_")) or "attachment"
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype, filename=filename)
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # add_alternative copies it into the parts; it belongs on top only
    return message
