"""Very large mails are parsed from a skeleton, so a 25 MB scan does not cost 190 MB to read."""

from __future__ import annotations

import email.policy
import os
import tracemalloc
from email.message import EmailMessage

from postroom.core.mail.large_mail import LARGE_MAIL, cut_large_bodies
from postroom.core.mail.parse import parse_mail


def big_mail(attachment: bytes, *, text_attachment: str = "", subtype: str = "pdf") -> bytes:
    message = EmailMessage()
    message["From"] = "Customer <customer@example.org>"
    message["Subject"] = "The scan"
    message["Message-ID"] = "<scan@example.org>"
    message.set_content("See the scan.\n")
    message.add_attachment(attachment, maintype="application", subtype=subtype, filename="scan.pdf")
    if text_attachment:
        message.add_attachment(text_attachment, subtype="plain", cte="base64", filename="log.txt")
    return message.as_bytes(policy=email.policy.SMTP)


def test_a_big_attachment_is_listed_with_its_exact_size_and_the_texts_are_kept() -> None:
    scan = os.urandom(3 * 1024 * 1024 + 7)
    log = "a line of a long log file\n" * 40_000
    raw = big_mail(scan, text_attachment=log)

    parsed = parse_mail(raw)

    assert [(a.name, a.content_type, a.size) for a in parsed.attachments] == [
        ("scan.pdf", "application/pdf", len(scan)),
        ("log.txt", "text/plain", len(log.encode())),
    ]
    assert parsed.text == "See the scan.\n"
    assert parsed.raw is raw


def test_only_big_base64_bodies_of_non_text_parts_are_cut_out() -> None:
    raw = big_mail(os.urandom(LARGE_MAIL), text_attachment="x" * LARGE_MAIL)

    skeleton, sizes = cut_large_bodies(raw)

    assert list(sizes.values()) == [LARGE_MAIL]
    assert len(raw) - len(skeleton) > LARGE_MAIL  # the scan is gone...
    assert len(skeleton) > LARGE_MAIL  # ...the text attachment is still there
    small = big_mail(os.urandom(1000))
    assert cut_large_bodies(small) == (small, {})


def test_reading_a_25_mb_mail_holds_little_more_than_the_mail() -> None:
    raw = big_mail(os.urandom(18 * 1024 * 1024))
    tracemalloc.start()
    try:
        parsed = parse_mail(raw)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed.attachments[0].size == 18 * 1024 * 1024
    assert peak < len(raw) // 2, f"parsing a {len(raw) >> 20} MiB mail took {peak >> 20} MiB more"
