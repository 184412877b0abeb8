"""Real mail collections the tests read in place: CPython's own test_email data."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from tests.support.mail import header_lines_mail as mail


def _cpython_email_data() -> Path | None:
    try:
        import test  # the stdlib's test package; some distributions leave it out

        candidates = [os.path.join(os.path.dirname(test.__file__), "test_email", "data")]
    except ImportError:
        candidates = []
    candidates += sorted(glob.glob("/usr/lib/python3*/test/test_email/data"))
    return next((Path(c) for c in candidates if os.path.isdir(c)), None)


def _generated_mails() -> dict[str, bytes]:
    """Stand-ins shaped like CPython's test mails, for interpreters shipped without the test package."""
    return {
        "plain": mail("From: a@example.com", "Subject: plain"),
        "multipart": mail(
            "From: a@example.com",
            'Content-Type: multipart/mixed; boundary="b"',
            body=b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: image/gif\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n--b--\r\n",
        ),
        "no-boundary": mail("From: a@example.com", "Content-Type: multipart/mixed", body=b"text\r\n"),
        "digest": mail(
            "From: a@example.com",
            'Content-Type: multipart/digest; boundary="d"',
            body=b"--d\r\n\r\nFrom: b@example.com\r\nSubject: inner\r\n\r\nbody\r\n--d--\r\n",
        ),
        "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    }


#: Where CPython's test_email data lies on this machine, or None.
CPYTHON_EMAIL_DATA = _cpython_email_data()
#: File name -> raw bytes of CPython's test mails (generated stand-ins where the interpreter has none).
CPYTHON_SAMPLES = (
    {p.name: p.read_bytes() for p in sorted(CPYTHON_EMAIL_DATA.iterdir()) if p.is_file()} if CPYTHON_EMAIL_DATA else _generated_mails()
)
