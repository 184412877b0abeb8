"""A man in the middle for tests: a TCP proxy that strips STARTTLS/STLS from what the server offers.

It forwards to a real server (Dovecot, aiosmtpd) and rewrites the capability words in the server's
lines, as a downgrading attacker does, and records every byte the client sent, so a test can prove
that no credential crossed the wire in clear.
"""

from __future__ import annotations

import re

from tests.servers.tcp_proxy import TcpProxy

#: The capability words a downgrade removes: IMAP's and SMTP's STARTTLS, POP3's STLS. Rewritten to an
#: unknown word rather than cut, so the IMAP capability list and the EHLO's 250- lines stay well-formed.
_UPGRADE = re.compile(rb"\b(?:STARTTLS|STLS)\b")


class StrippingProxy(TcpProxy):
    """Listens on 127.0.0.1 and forwards each connection to the server, stripping the TLS upgrade."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__((target_host, target_port), rewrite=lambda lines: _UPGRADE.sub(b"XSTRIPPED", lines))
