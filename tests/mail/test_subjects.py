"""Subject normalisation, case tokens and reply subjects, table-driven."""

from __future__ import annotations

import pytest

from postroom.core.mail.subjects import (
    CASE_TOKEN_RE,
    add_subject_prefix,
    find_case_ticket_ids,
    find_case_tokens,
    format_case_token,
    normalise_subject,
    reply_subject,
)

FW_COLON = "\uff1a"  # the full-width colon Chinese and Japanese clients write


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello", "hello"),
        ("Re: Hello", "hello"),
        ("RE: RE: re: Hello", "hello"),
        ("Re:Re:Hello", "hello"),
        ("Fwd: Hello", "hello"),
        ("FW: Fw: Hello", "hello"),
        ("AW: WG: Hello", "hello"),
        ("SV: VS: Hello", "hello"),
        ("Antw: Doorst: Hello", "hello"),
        ("R: RIF: Ciao", "ciao"),
        ("Réf : TR : Bonjour", "bonjour"),
        ("RE : Bonjour", "bonjour"),
        ("Odp: PD: Dzień dobry", "dzień dobry"),
        ("YNT: Merhaba", "merhaba"),
        ("ΑΠ: ΣΧΕΤ: Γεια σας", "Γεια σας".casefold()),  # casefold folds the final sigma too
        (f"回复{FW_COLON}转发{FW_COLON}你好", "你好"),
        ("答复: 你好", "你好"),
        ("RE[2]: Hello", "hello"),
        ("Re(2): Hello", "hello"),
        ("Re^3: Hello", "hello"),
        ("Re: Fwd: AW: [Fwd: Hello]", "hello"),
        ("  Hello \t  World  ", "hello world"),
        ("STRASSE Straße", "strasse strasse"),
        ("Regarding: invoice", "regarding: invoice"),
        ("Order: 12345", "order: 12345"),
        ("Reply to me", "reply to me"),
        ("Re:", ""),
        ("", ""),
    ],
)
def test_reply_and_forward_markers_are_removed(subject: str, expected: str) -> None:
    assert normalise_subject(subject) == expected


@pytest.mark.parametrize(
    ("subject", "prefix", "expected"),
    [
        ("[ACME] Hello", "[ACME]", "hello"),
        ("[acme] Hello", "[ACME]", "hello"),
        ("Re: [ACME] Hello", "[ACME]", "hello"),
        ("[ACME] Re: [ACME] Hello", "[ACME]", "hello"),
        ("AW: ACME  Support: Hello", "ACME Support:", "hello"),
        ("ACME Hello", "ACME", "hello"),
        ("ACMEcorp Hello", "ACME", "acmecorp hello"),
        ("Hello [ACME]", "[ACME]", "hello [acme]"),
        ("[ACME] Hello", None, "[acme] hello"),
        ("[ACME] Hello", "", "[acme] hello"),
    ],
)
def test_the_profile_prefix_is_removed_at_the_start(subject: str, prefix: str | None, expected: str) -> None:
    assert normalise_subject(subject, prefix) == expected


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Hello [#PR-42]", "hello"),
        ("Re: [ACME] Hello [#PR-42]", "hello"),
        ("[#PR-42] Hello", "hello"),
        ("Hello [#ACME-EU-7] again [#PR-1]", "hello again"),
        ("Hello [#PR-x]", "hello [#pr-x]"),
        ("Hello [PR-42]", "hello [pr-42]"),
    ],
)
def test_case_tokens_are_removed_anywhere(subject: str, expected: str) -> None:
    assert normalise_subject(subject, "[ACME]") == expected


def test_a_reply_and_its_original_normalise_the_same() -> None:
    original = "Question about my order"
    sent = reply_subject(original, "[ACME]", format_case_token("PR", 42))
    customer_answer = f"AW: {sent}"
    assert normalise_subject(customer_answer, "[ACME]") == normalise_subject(original, "[ACME]")


@pytest.mark.parametrize(
    ("prefix", "ticket_id", "expected"),
    [("PR", 42, "[#PR-42]"), (None, 7, "[#PR-7]"), ("", 7, "[#PR-7]"), ("ACME-EU", 1, "[#ACME-EU-1]")],
)
def test_case_tokens_have_the_form_hash_prefix_dash_id(
    prefix: str | None, ticket_id: int, expected: str
) -> None:
    token = format_case_token(prefix, ticket_id)
    assert token == expected
    assert CASE_TOKEN_RE.fullmatch(token)
    assert find_case_ticket_ids(f"Re: x {token}", prefix) == [ticket_id]


def test_a_ticket_id_alone_gets_the_default_prefix() -> None:
    assert format_case_token(42) == "[#PR-42]"


@pytest.mark.parametrize("prefix", ["A B", "A]", "#A", "[A"])
def test_a_case_prefix_that_would_not_read_back_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="case token prefix"):
        format_case_token(prefix, 1)


def test_case_tokens_are_found_as_written_in_order() -> None:
    subject = "Re: [#PR-42] merged with [#pr-43] and [#OTHER-5]"
    assert find_case_tokens(subject) == ["[#PR-42]", "[#pr-43]", "[#OTHER-5]"]
    assert find_case_ticket_ids(subject) == [42, 43]
    assert find_case_ticket_ids(subject, "other") == [5]
    assert find_case_tokens("no token [#PR-] [PR-4]") == []


@pytest.mark.parametrize(
    ("subject", "prefix", "expected"),
    [
        ("Hello", "[ACME]", "[ACME] Hello"),
        ("[ACME] Hello", "[ACME]", "[ACME] Hello"),
        ("[acme]   Hello", "[ACME]", "[ACME] Hello"),
        ("Re: Hello", "[ACME]", "Re: [ACME] Hello"),
        ("Re: Re: [ACME] Re: Hello", "[ACME]", "Re: [ACME] Hello"),
        ("[ACME] Re: Hello", "[ACME]", "Re: [ACME] Hello"),
        ("AW: WG: Hello", "[ACME]", "Re: [ACME] Hello"),
        ("Fwd: Hello", "[ACME]", "Fwd: [ACME] Hello"),
        ("Re: Hello", None, "Re: Hello"),
        ("Re: Re: Hello", "", "Re: Hello"),
    ],
)
def test_the_prefix_is_added_once_after_one_reply_marker(
    subject: str, prefix: str | None, expected: str
) -> None:
    assert add_subject_prefix(subject, prefix) == expected


@pytest.mark.parametrize(
    ("subject", "prefix", "token", "expected"),
    [
        ("Question", "[ACME]", "[#PR-42]", "Re: [ACME] Question [#PR-42]"),
        ("AW: Re: [ACME] Question [#PR-42]", "[ACME]", "[#PR-42]", "Re: [ACME] Question [#PR-42]"),
        ("Question [#PR-41]", None, "[#PR-42]", "Re: Question [#PR-42]"),
        ("Question", None, None, "Re: Question"),
        ("Question", "[ACME]", 42, "Re: [ACME] Question [#PR-42]"),
    ],
)
def test_a_reply_subject_reads_re_prefix_subject_token(
    subject: str, prefix: str | None, token: str | int | None, expected: str
) -> None:
    assert reply_subject(subject, prefix, token) == expected
