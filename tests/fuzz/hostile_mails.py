"""The corpus of hostile mails: what an attacker or a broken sender puts in front of the fetch path.

Each entry is made by code rather than checked in as a file: several are megabytes of one repeated
byte. ``python -m tests.fuzz.hostile_mails DIR`` writes them out as ``.eml`` files to look at.
"""

from __future__ import annotations

import sys
from pathlib import Path

HEAD = b"From: Mallory <mallory@evil.example>\r\nTo: support@acme.test\r\n"


def _mail(name: str, head: bytes = b"", body: bytes = b"Hello.\r\n", subject: bytes | None = None) -> bytes:
    subject_line = b"Subject: " + (subject if subject is not None else name.encode()) + b"\r\n"
    return HEAD + subject_line + f"Message-ID: <{name}@evil.example>\r\n".encode() + head + b"\r\n" + body


def _nested(depth: int, boundary: bytes = b"b") -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="' + boundary + str(n).encode() + b'"\r\n\r\n--'
        + boundary + str(n).encode() + b"\r\n" for n in range(depth)
    )
    return opening + b"Content-Type: text/plain\r\n\r\ndeep\r\n"


def _rfc822_nested(depth: int) -> bytes:
    return b"Content-Type: message/rfc822\r\n\r\n" * depth + b"Subject: inner\r\n\r\nbody\r\n"


MAILS: dict[str, bytes] = {
    # Header injection: line breaks where a value should be one line.
    "bare CR in the subject": _mail("cr", subject=b"Hi\rBcc: all@evil.example"),
    "bare LF in a header value": HEAD + b"Subject: hi\nBcc: all@evil.example\r\nMessage-ID: <lf@e.example>\r\n\r\nx\r\n",
    "encoded CRLF in the subject": _mail("enc-crlf", subject=b"=?utf-8?Q?a=0D=0ABcc:_all@evil.example?="),
    "encoded CRLF in the sender name": (
        b"From: =?utf-8?B?TWFsbG9yeQ0KQmNjOiBhbGxAZXZpbC5leGFtcGxl?= <m@evil.example>\r\n"
        b"Subject: name\r\nMessage-ID: <enc-name@evil.example>\r\n\r\nx\r\n"
    ),
    "CRLF in the reply-to address": _mail("rt", b"Reply-To: <a@b.example\r\n Bcc: x@evil.example>\r\n"),
    "header with no name": _mail("noname", b": value without a name\r\n"),
    "header name with spaces": _mail("spaces", b"X Bad Name: value\r\n"),
    # Overlong headers and lines.
    "a 100 000-character subject": _mail("long-subject", subject=b"x" * 100_000),
    "a 1 MB line in the body": _mail("long-line", body=b"y" * 1_000_000 + b"\r\n"),
    "a 50 000-character message-id": HEAD + b"Message-ID: <" + b"i" * 50_000 + b"@e.example>\r\n\r\nx\r\n",
    "10 000 header lines": _mail("many-headers", b"".join(b"X-H%d: v\r\n" % n for n in range(10_000))),
    "a folded header of 20 000 continuation lines": _mail("folded", b"X-Folded: a\r\n" + b" b\r\n" * 20_000),
    "a 300-character sender address": _mail("long-from", b"Sender: <" + b"s" * 300 + b"@e.example>\r\n"),
    # Deep MIME nesting.
    "multipart nested 2 000 deep": _mail("deep-multipart", b"MIME-Version: 1.0\r\n" + _nested(2000)[:-2]),
    "multipart nested 60 deep": _mail("nested-60", b"MIME-Version: 1.0\r\n" + _nested(60)[:-2]),
    "message/rfc822 nested 3 000 deep": _mail("deep-rfc822", b"MIME-Version: 1.0\r\n" + _rfc822_nested(3000)[:-2]),
    # Broken encodings.
    "invalid base64 body": _mail("b64", b"Content-Transfer-Encoding: base64\r\n", b"!!!%%%***\r\n===\r\n"),
    "truncated quoted-printable": _mail("qp", b"Content-Transfer-Encoding: quoted-printable\r\n", b"abc=\r\n=4"),
    "unknown transfer encoding": _mail("cte", b"Content-Transfer-Encoding: x-rot13\r\n"),
    "unknown charset": _mail("charset", b"Content-Type: text/plain; charset=x-klingon\r\n", b"\xff\xfe\xfd\r\n"),
    "charset naming a codec that is no charset": _mail("rot", b"Content-Type: text/plain; charset=rot13\r\n"),
    "charset unicode-escape": _mail("uesc", b"Content-Type: text/plain; charset=unicode_escape\r\n", b"\\x41\\N{x}\r\n"),
    "utf-16 body with odd length": _mail("utf16", b"Content-Type: text/plain; charset=utf-16\r\n", b"\xff\xfea\x00b"),
    "encoded word in an unknown charset": _mail("ew", subject=b"=?x-unknown?B?w6k=?= =?utf-8?Q?=ZZ?="),
    "encoded word with broken base64": _mail("ew64", subject=b"=?utf-8?B?####?="),
    "RFC 2231 parameters out of order": _mail(
        "rfc2231", b"Content-Type: text/plain; name*1*=b; name*0*=utf-8''a; name*=c\r\n"
    ),
    "raw 8-bit bytes in every header": b"From: J\xf6rg \xff <j@e.example>\r\nSubject: \xc3\x28\xa0\xa1\r\n\r\nx\r\n",
    # NUL bytes and control characters.
    "NUL bytes in the header block": _mail("nul-head", b"X-Nul: a\x00b\r\n", subject=b"nul\x00here"),
    "NUL bytes in the body": _mail("nul-body", body=b"a\x00" * 1000),
    "only NUL bytes": b"\x00" * 4096,
    "terminal escapes in the subject": _mail("esc", subject=b"\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07"),
    "every C0 control character in headers": _mail("c0", b"X-Ctl: " + bytes(range(1, 32)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"),
    "a byte-order mark and blank lines before the headers": b"\xef\xbb\xbf\r\n\r\n" + _mail("bom"),
    # Slow parameter lists.
    "a content-type with 200 000 empty parameters": _mail("slow-params", b"Content-Type: text/plain" + b" ;" * 200_000 + b"\r\n"),
    "a quoted parameter holding 100 000 semicolons": _mail("slow-quoted", b'Content-Type: text/plain; name="' + b";" * 100_000 + b'"\r\n'),
    "a content-disposition with 5 000 parameters": _mail("disp", b"Content-Disposition: attachment" + b"; a=b" * 5000 + b"\r\n"),
    # Huge address lists.
    "10 000 recipients in To": HEAD.replace(b"To: support@acme.test", b"To: " + b", ".join(b"r%d@e.example" % n for n in range(10_000))) + b"Subject: many\r\n\r\nx\r\n",
    "100 000 empty addresses in Cc": _mail("cc", b"Cc: " + b"," * 100_000 + b"\r\n"),
    "5 000 nested groups in To": _mail("groups", b"To: " + b"g:" * 5000 + b";" * 5000 + b"\r\n"),
    "unbalanced angle brackets and quotes": _mail("angles", b'Cc: <<<a@b.example>, "unterminated <x@y.example>\r\n'),
    "20 000 references": _mail("refs", b"References: " + b" ".join(b"<r%d@e.example>" % n for n in range(20_000)) + b"\r\n"),
    # Bad boundaries.
    "multipart without a boundary": _mail("nobound", b"Content-Type: multipart/mixed\r\n", b"--\r\nx\r\n"),
    "an empty boundary": _mail("empty", b'Content-Type: multipart/mixed; boundary=""\r\n', b"--\r\n\r\nx\r\n----\r\n"),
    "a 10 000-character boundary": _mail("longb", b'Content-Type: multipart/mixed; boundary="' + b"q" * 10_000 + b'"\r\n', b"--" + b"q" * 10_000 + b"\r\n\r\nx\r\n"),
    "a boundary that never closes and nested parts reusing it": _mail(
        "reuse", b'Content-Type: multipart/mixed; boundary="r"\r\n',
        b'--r\r\nContent-Type: multipart/mixed; boundary="r"\r\n\r\n--r\r\n--r\r\nx\r\n',
    ),
    "a boundary with regex and line-break characters": _mail("regex", b'Content-Type: multipart/mixed; boundary="(.*)+[\\r\\n]"\r\n', b"--(.*)+[\\r\\n]\r\n\r\nx\r\n"),
    # Truncated mails.
    "cut inside the header block": b"From: a@e.example\r\nSubject: cut\r\nContent-Type: multipart/mi",
    "cut inside a base64 attachment": _mail(
        "cut64", b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="c"\r\n',
        b"--c\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLj",
    ),
    "headers only, no blank line": b"From: a@e.example\r\nSubject: only headers",
    "a lone From line": b"From ",
    "a picture, not a mail": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
}


def main(folder: str) -> None:
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for number, raw in enumerate(MAILS.values()):
        (target / f"{number:02d}.eml").write_bytes(raw)


if __name__ == "__main__":
    main(sys.argv[1])
