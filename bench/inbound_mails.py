"""The generated support mailbox of ``bench.inbound``: realistic mails, a quarter of them replies in a thread.

Fixed seed, so every run and every round reads the same bytes: plain text and multipart/alternative,
one in ten with a 50-200 KB attachment, non-ASCII subjects, 300 customers writing again and again,
and a quarter replies (``Re:``, ``In-Reply-To`` and ``References``) to an earlier mail of the same
customer's thread, which the case-id resolver puts on that mail's ticket.
"""

from __future__ import annotations

import email.policy
import email.utils
import os
import random
import uuid
from email.message import EmailMessage

SUBJECTS = [
    "Grüße aus Köln \u2013 Rechnung Nr. {n}",
    "Ваш заказ {n} отправлен",
    "請確認訂單 {n}",
    "Problème de livraison n° {n} ✓",
    "Question about order {n}",
    "Αίτημα υποστήριξης {n}",
]
WORDS = [
    *["the", "order", "arrived", "damaged", "please", "send", "a", "replacement", "or", "refund"],
    *["thank", "you", "kind", "regards"],
]
CUSTOMERS = 300
REPLY_SHARE = 0.25


def generate_mails(count: int, seed: int) -> list[bytes]:
    """``count`` mails; mail n > 0 is, a quarter of the time, a reply to an earlier one (its thread's newest)."""
    rng = random.Random(seed)
    mails = []
    # Per started thread: its subject, its customer and the Message-IDs in it so far.
    threads: list[tuple[str, int, list[str]]] = []
    for n in range(count):
        message_id = f"<bench-{seed}-{n}@example.org>"
        message = EmailMessage()
        if threads and rng.random() < REPLY_SHARE:
            subject, customer, ids = rng.choice(threads)
            message["Subject"] = f"Re: {subject}"
            message["In-Reply-To"] = ids[-1]
            message["References"] = " ".join(ids[-10:])
            ids.append(message_id)
        else:
            subject, customer = rng.choice(SUBJECTS).format(n=n), n % CUSTOMERS
            message["Subject"] = subject
            threads.append((subject, customer, [message_id]))
        message["From"] = f"Kundin {customer} Müller <customer{customer}@example.org>"
        message["To"] = "Support <support@example.test>"
        message["Date"] = email.utils.formatdate(1_700_000_000 + n * 60, localtime=False)
        message["Message-ID"] = message_id
        text_body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 400))) + "\n"
        message.set_content(text_body)
        kind = rng.random()
        if kind >= 0.5:
            message.add_alternative(f"<html><body><p>{text_body}</p></body></html>\n", subtype="html")
        if kind >= 0.9:
            size = rng.randint(50_000, 200_000)
            message.add_attachment(
                rng.randbytes(size), maintype="application", subtype="pdf", filename=f"scan-{n}.pdf"
            )
        mails.append(message.as_bytes(policy=email.policy.SMTP))
    return mails


def big_mail(size: int) -> bytes:
    """One mail of about ``size`` bytes: a short text and one base64 attachment."""
    message = EmailMessage()
    message["From"] = "customer@example.org"
    message["To"] = "support@example.test"
    message["Subject"] = "The big scan"
    message["Message-ID"] = f"<big-{uuid.uuid4().hex}@example.org>"
    message.set_content("See the attachment.\n")
    # base64 grows by 4/3 plus a CRLF every 76 characters.
    raw_size = int(size * 3 / 4 * 76 / 78)
    message.add_attachment(os.urandom(raw_size), maintype="application", subtype="octet-stream", filename="x")
    return message.as_bytes(policy=email.policy.SMTP)
