"""``attachment_data`` finds the attachment the message row lists at that place, with its bytes: text
files with a name, attached mails, and large bodies that the parser cut out before parsing."""

from __future__ import annotations

import os
from email.message import EmailMessage

from postroom.core.mail.attachments import attachment_data
from postroom.core.mail.large_mail import LARGE_MAIL
from postroom.core.mail.parse import parse_mail


def _mail() -> tuple[bytes, list[bytes]]:
    inner = EmailMessage()
    inner["From"] = "a@example.org"
    inner["Subject"] = "Forwarded order"
    inner.set_content("The original order.\n")
    big = os.urandom(LARGE_MAIL + 1024)  # the mail is large: parse_mail cuts this body out
    mail = EmailMessage()
    mail["From"] = "Carla <carla@example.org>"
    mail["To"] = "support@acme.test"
    mail["Subject"] = "Three files"
    mail.set_content("See the files.\n")
    mail.add_alternative("<p>See the files.</p>", subtype="html")
    mail.add_attachment("a text file\n", filename="notes.txt")
    mail.add_attachment(inner)
    mail.add_attachment(big, maintype="application", subtype="octet-stream", filename="scan.bin")
    return mail.as_bytes(), [b"a text file\n", inner.as_bytes(), big]


def test_each_listed_attachment_comes_back_with_its_bytes() -> None:
    raw, contents = _mail()
    listed = parse_mail(raw).attachments
    assert [(a.name, a.content_type) for a in listed] == [
        ("notes.txt", "text/plain"),
        ("Forwarded order.eml", "message/rfc822"),
        ("scan.bin", "application/octet-stream"),
    ]
    for index, (info, expected) in enumerate(zip(listed, contents, strict=True)):
        found = attachment_data(raw, index)
        assert found is not None
        assert (found.name, found.content_type) == (info.name, info.content_type)
        if info.content_type == "message/rfc822":  # the attached mail, as the generator writes it again
            assert found.data.replace(b"\r\n", b"\n") == expected.replace(b"\r\n", b"\n")
        else:
            assert found.data == expected
            assert len(found.data) == info.size
    assert attachment_data(raw, len(listed)) is None
    assert attachment_data(raw, -1) is None
