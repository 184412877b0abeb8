"""The validators behind the CLI under generated values: each value is taken or refused in one sentence."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from postroom.core.app import Postroom
from postroom.core.contract.errors import UserError
from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID
from postroom.core.data.profiles import ProfileFields, create_profile
from postroom.core.data.validation import check_address, check_port, check_positive, check_single_line
from tests.fuzz.sentences import is_one_sentence
from tests.fuzz.strategies import addresses

anything = st.text(max_size=60)
#: Integers as an operator may type them: small, at the edges of the ranges, and far beyond 64 bits.
numbers = st.one_of(st.integers(-10, 70_000), st.integers(-(2**70), 2**70))


def _taken_or_refused(call: object, *args: object) -> None:
    try:
        call(*args)  # type: ignore[operator]
    except UserError as error:
        assert is_one_sentence(str(error)), str(error)


@given(st.one_of(addresses, anything), st.sampled_from(["send-from address", "reply-to address"]))
@example("a@b", "send-from address")
@example("\x00@b.example", "reply-to address")
def test_check_address_takes_or_refuses_any_text(value: str, field: str) -> None:
    # The field is the code's own label (a generated one with a line break was the test's mistake).
    _taken_or_refused(check_address, value, field)


@given(numbers)
def test_check_port_and_check_positive_take_or_refuse_any_integer(value: int) -> None:
    _taken_or_refused(check_port, value, "incoming port")
    _taken_or_refused(check_positive, value, "fetch interval (seconds)")


@given(anything)
def test_check_single_line_takes_or_refuses_any_text(value: str) -> None:
    _taken_or_refused(check_single_line, value, "subject prefix")


@pytest.fixture
def sqlite_app(sqlite_template: Path, tmp_path: Path) -> Iterator[Postroom]:
    """One SQLite database for all the examples of a test; each example's profile is rolled back."""
    path = tmp_path / "fuzz.sqlite"
    shutil.copyfile(sqlite_template, path)
    app = Postroom(f"sqlite:///{path}")
    try:
        yield app
    finally:
        app.dispose()


text_or_none = st.one_of(st.none(), anything)
number_or_none = st.one_of(st.none(), numbers)
profile_fields = st.builds(
    ProfileFields,
    username=text_or_none, password=text_or_none, send_from_name=st.one_of(st.none(), st.text(max_size=300)),
    send_from_address=st.one_of(st.none(), addresses, anything), subject_prefix=text_or_none,
    send_protocol=st.one_of(st.none(), st.sampled_from(["smtp", "maildir", "none", "imap", ""]), anything),
    outgoing_host=text_or_none, outgoing_port=number_or_none, outgoing_folder=text_or_none,
    reply_to=st.one_of(st.none(), st.just(""), addresses, anything), delete_on_fetch=st.one_of(st.none(), st.booleans()),
    fetch_protocol=st.one_of(st.none(), st.sampled_from(["imap", "pop3", "maildir", "none", "smtp"]), anything),
    incoming_host=text_or_none, incoming_port=number_or_none, incoming_folder=text_or_none,
    fetch_interval=number_or_none, fetch_last_days=number_or_none, tls_verify=st.one_of(st.none(), st.booleans()),
)


@given(name=anything, fields=profile_fields)
@example(name="support", fields=ProfileFields(fetch_protocol="imap", incoming_host="h", incoming_port=70_000))
def test_a_profile_with_any_values_is_created_or_refused_in_one_sentence(
    sqlite_app: Postroom, name: str, fields: ProfileFields
) -> None:
    with sqlite_app.sessions() as session:
        try:
            create_profile(session, sqlite_app.plugins, DEFAULT_CONTACT_CENTER_ID, name, fields)
        except UserError as error:
            assert is_one_sentence(str(error)), str(error)
        finally:
            session.rollback()
