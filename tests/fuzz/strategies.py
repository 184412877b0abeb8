"""Hypothesis strategies the fuzz tests share: mail-like bytes, structured mails, words and addresses."""

from __future__ import annotations

import itertools
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

from hypothesis import strategies as st

#: Pieces real and broken mail is made of; random bytes alone almost never look like a header block.
FRAGMENTS: list[bytes] = [
    b"From: ", b"To: ", b"Cc: ", b"Subject: ", b"Message-ID: ", b"In-Reply-To: ", b"References: ",
    b"Date: ", b"Reply-To: ", b"MIME-Version: 1.0", b"Content-Type: ", b"Content-Disposition: ",
    b"Content-Transfer-Encoding: ", b"multipart/mixed", b"multipart/alternative", b"message/rfc822",
    b"text/plain", b"text/html", b"application/pdf", b"; boundary=", b'; boundary="b"', b"; charset=",
    b"; name*0*=utf-8''a; name*1*=%E9", b"; filename=", b"utf-8", b"iso-2022-jp", b"x-unknown", b"utf-7",
    b"base64", b"quoted-printable", b"8bit", b"--b", b"--b--", b"--", b"=?utf-8?B?", b"=?utf-8?Q?",
    b"=?iso-8859-1?q?", b"?=", b"=C3=A9", b"=\r\n", b"w6k=", b"<a@b.example>", b"a@b.example",
    b'"Doe, J." <j@d.example>', b"@", b"<", b">", b",", b";", b":", b'"', b"(", b")", b"\\",
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b" ", b"\t", b"\x00", b"\x1b[2J", b"\xff\xfe", b"\xc3\xa9",
    b"\xe9", b"\x8e\xa1", b"From someone Mon Jan 1 00:00:00 2024\n", b"\xef\xbb\xbf", b"=?", b"?",
    b"Mon, 1 Jan 2024 00:00:00 +0000", b"Thu, 31 Dec 99999 25:61:61 +9999", b"Auto-Submitted: auto-replied",
]

mail_like_bytes = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=60
).map(b"".join)

#: Printable text of any script, no control characters (those are scrubbed or refused, not round-tripped).
words = st.text(
    st.characters(categories=["L", "N", "P", "S", "Zs"], exclude_characters="\x85\u2028\u2029"),
    max_size=40,
)
local_parts = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}", fullmatch=True).filter(
    lambda s: ".." not in s and not s.endswith(".")
)
domains = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,2}\.(org|example|test)", fullmatch=True)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
CHARSETS = ["utf-8", "iso-8859-1", "iso-8859-15", "windows-1252", "koi8-r", "shift_jis", "euc-jp",
            "iso-2022-jp", "gb2312", "big5", "euc-kr", "utf-16", "utf-7"]
ENCODINGS = ["base64", "quoted-printable", "8bit", "7bit"]
_BOUNDARIES = itertools.count()


@st.composite
def leaf_part(draw: st.DrawFn) -> EmailMessage:
    """A text/plain or text/html part in a random charset and transfer encoding, or an attachment."""
    part = EmailMessage(policy=SMTP)
    kind = draw(st.sampled_from(["plain", "html", "attachment"]))
    if kind == "attachment":
        part.set_content(draw(st.binary(max_size=200)), maintype="application", subtype="octet-stream",
                         filename=draw(words) or "file.bin")
        return part
    text = draw(words)
    charset = draw(st.sampled_from(CHARSETS))
    try:
        text.encode(charset)
    except (UnicodeEncodeError, LookupError):
        charset = "utf-8"
    cte = draw(st.sampled_from(ENCODINGS))
    if cte == "7bit" and not text.encode(charset).isascii():
        cte = "base64"
    part.set_content(text, subtype=kind, charset=charset, cte=cte)
    return part


def _tree(children: st.SearchStrategy[EmailMessage]) -> st.SearchStrategy[EmailMessage]:
    @st.composite
    def multipart(draw: st.DrawFn) -> EmailMessage:
        parts = draw(st.lists(children, min_size=1, max_size=3))
        subtype = draw(st.sampled_from(["mixed", "alternative", "related"]))
        outer = EmailMessage(policy=SMTP)
        # A boundary of our own: the generator's comes from the random module, which Hypothesis seeds.
        outer["Content-Type"] = f'multipart/{subtype}; boundary="pr-{next(_BOUNDARIES)}"'
        for part in parts:
            outer.attach(part)
        return outer

    return multipart()


#: A MIME tree up to a few levels deep: multiparts of leaves and of other multiparts.
mime_trees = st.recursive(leaf_part(), _tree, max_leaves=6)


@st.composite
def structured_mails(draw: st.DrawFn) -> tuple[bytes, EmailMessage, dict[str, object]]:
    """A mail as a client writes it, with random header text and MIME tree: its bytes, the message and
    the header fields it was made of."""
    message = draw(mime_trees)
    fields: dict[str, object] = {
        "subject": draw(words),
        "from_name": draw(words),
        "from_address": draw(addresses),
        "to": draw(st.lists(addresses, min_size=1, max_size=4, unique=True)),
        "message_id": f"{draw(local_parts)}@{draw(domains)}",
    }
    return written_mail(message, fields)


def written_mail(
    message: EmailMessage, fields: dict[str, object]
) -> tuple[bytes, EmailMessage, dict[str, object]]:
    """``message`` with the header ``fields`` (subject, from_name, from_address, to, message_id), as bytes."""
    message["From"] = Address(str(fields["from_name"]), addr_spec=str(fields["from_address"]))
    message["To"] = ", ".join(fields["to"])  # type: ignore[arg-type]
    message["Subject"] = fields["subject"]
    message["Message-ID"] = f"<{fields['message_id']}>"
    if "MIME-Version" not in message:
        message["MIME-Version"] = "1.0"
    return message.as_bytes(policy=SMTP), message, fields
