"""Score postroom's mail parser against the Zammad test mails: subjects, senders and display names.

The corpus is AGPL test data and is read in place (never copied into this repository):
    python bench/zammad_corpus.py [--corpus DIR] [--baseline] [--timing]
``--baseline`` scores a plain stdlib policy.default parse the same way, for comparison;
``--timing`` also times parse_mail against that floor (parse + walk of bodies and attachments).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from postroom.core.mail.parse import MailParseError, parse_mail

DEFAULT_CORPUS = Path("/work/shared/corpora/zammad-mail")

# Misses where Zammad's expected value is itself a mis-parse; printed beside the miss, still counted.
ZAMMAD_QUIRKS = {
    ("mail018.box", "subject"): "Zammad leaves the UTF-7 encoded word undecoded ('+ANw-' is 'Ü')",
    ("mail035.box", "sender"): "Zammad keeps the quotes of a From that is a bare quoted address",
    ("mail046.box", "display name"): "raw GBK bytes; Zammad's value is mojibake",
    ("mail065.box", "display name"): "Zammad splits the encoded word at its comma",
    ("mail076.box", "sender"): "Zammad keeps the stray '>' after the address",
    ("mail076.box", "display name"): "Zammad makes the whole broken header the name",
    ("mail087.box", "display name"): "'From: Test test@example.com' has no display name",
}
Fields = tuple[str, str, str]  # subject, from address, display name


def postroom_fields(raw: bytes) -> Fields:
    mail = parse_mail(raw)
    return mail.subject, mail.from_address or "", mail.from_name or ""


def stdlib_fields(raw: bytes) -> Fields:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    sender = message["from"]
    addresses = sender.addresses if sender is not None else ()
    first = addresses[0] if addresses else None
    if first is None:
        return str(message["subject"] or ""), "", ""
    return str(message["subject"] or ""), first.addr_spec, first.display_name


def stdlib_floor(raw: bytes) -> int:
    """What any parser must do at least: a policy.default parse and a walk reading every part."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    size = 0
    for part in message.walk():
        if part.is_multipart():
            continue
        part.get_content_type()
        part.get_filename()
        part.get_content_disposition()
        size += len(part.get_payload(decode=True) or b"")
    return size


def score(corpus: Path, read: Callable[[bytes], Fields]) -> tuple[list[int], list[str]]:
    """Compare each file's fields with Zammad's: subjects and names ignoring surrounding blanks,
    addresses ignoring case (postroom lower-cases them)."""
    expected = json.loads((corpus / "expected.json").read_text(encoding="utf-8"))
    right = [0, 0, 0]
    misses: list[str] = []
    for name, want in sorted(expected.items()):
        raw = (corpus / "box" / name).read_bytes()
        try:
            got = read(raw)
        except (MailParseError, Exception) as error:  # a baseline crash is a miss on every field
            got = (f"<{type(error).__name__}: {error}>",) * 3
        wanted = (
            (want["subject"] or "").strip(),
            (want["from_email"] or "").lower(),
            (want["from_display_name"] or "").strip(),
        )
        values = (got[0].strip(), got[1].lower(), got[2].strip())
        for i, label in enumerate(("subject", "sender", "display name")):
            if values[i] == wanted[i]:
                right[i] += 1
            else:
                quirk = ZAMMAD_QUIRKS.get((name, label))
                note = f"  [{quirk}]" if quirk else ""
                misses.append(f"{name:52} {label:12} got {values[i]!r} expected {wanted[i]!r}{note}")
    return right, misses


def report(title: str, corpus: Path, read: Callable[[bytes], Fields]) -> None:
    right, misses = score(corpus, read)
    total = len(json.loads((corpus / "expected.json").read_text(encoding="utf-8")))
    subjects, senders, names = (f"{n}/{total}" for n in right)
    print(f"{title}: subjects {subjects}, senders {senders}, display names {names}")
    for miss in misses:
        print("  miss", miss)


def timing(corpus: Path, rounds: int = 5) -> None:
    raws = [path.read_bytes() for path in sorted((corpus / "box").glob("*.box"))]
    for title, function in (("stdlib floor", stdlib_floor), ("parse_mail", parse_mail)):
        start = time.perf_counter()
        for _ in range(rounds):
            for raw in raws:
                function(raw)
        elapsed = (time.perf_counter() - start) / rounds
        print(f"{title:13} {elapsed * 1000:8.1f} ms for {len(raws)} mails ({sum(map(len, raws)) >> 10} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--baseline", action="store_true", help="also score a plain stdlib parse")
    parser.add_argument("--timing", action="store_true", help="also time parse_mail against the stdlib floor")
    args = parser.parse_args()
    report("postroom", args.corpus, postroom_fields)
    if args.baseline:
        report("stdlib policy.default", args.corpus, stdlib_fields)
    if args.timing:
        timing(args.corpus)


if __name__ == "__main__":
    main()
