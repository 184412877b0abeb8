"""The builtin send-error classifier: the RFC 3463 enhanced code decides, else the kind of failure."""

from __future__ import annotations

from collections.abc import Iterator

import pluggy
import pytest

from postroom.core.contract import hooks
from postroom.core.contract.hooks import hookimpl
from postroom.core.contract.protocols import FailureKind, SendFailure
from postroom.core.contract.retry import CATEGORY_POLICIES, ErrorCategory
from postroom.core.outbound.classification import category_for_enhanced_status, parse_enhanced_status
from postroom.plugins.policies import classifier, default, no_retry, progressive, rate_limit
from postroom.plugins.policies.classifier import classify_send_failure


def failure(text: str, code: int | None = None, kind: FailureKind = "protocol") -> SendFailure:
    return SendFailure(text, reply_code=code, kind=kind)


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (
            failure("5.1.1 The email account that you tried to reach does not exist", 550),
            ErrorCategory.ADDRESSING,
        ),
        (failure("5.1.10 Recipient address rejected: null MX", 556), ErrorCategory.ADDRESSING),
        (
            failure("4.2.2 The email account that you tried to reach is over quota", 452),
            ErrorCategory.MAILBOX,
        ),
        (failure("5.3.4 Message size exceeds fixed limit", 552), ErrorCategory.MAIL_SYSTEM),
        (failure("4.4.7 Message delivery time exceeded", 451), ErrorCategory.NETWORK_ROUTING),
        (failure("5.5.2 Syntax error, command unrecognized", 500), ErrorCategory.DELIVERY_PROTOCOL),
        (failure("5.6.3 Conversion required but not supported", 554), ErrorCategory.MESSAGE_CONTENT),
        (failure("5.7.1 first line\n5.7.1 second", 550), ErrorCategory.SECURITY_POLICY),
        (
            failure("550-5.7.26 Unauthenticated email is not accepted\r\n550 5.7.26 See the DMARC policy"),
            ErrorCategory.SECURITY_POLICY,
        ),
        (failure("Requested action not taken: mailbox unavailable", 550), ErrorCategory.UNIDENTIFIED),
        (
            failure(
                "The host name 'smtp.nowhere.invalid' of the SMTP server does not resolve.",
                kind="unknown-host",
            ),
            ErrorCategory.UNKNOWN_HOST,
        ),
        (
            failure("The SMTP server 127.0.0.1:25 refused the connection.", kind="connection"),
            ErrorCategory.CONNECTION,
        ),
        (
            failure(
                "The TLS handshake with SMTP server 127.0.0.1:465 failed: WRONG_VERSION_NUMBER.", kind="tls"
            ),
            ErrorCategory.CONNECTION,
        ),
        (
            failure(
                "The SMTP server 10.4.2.1:587 refused the login of user 'agent' "
                "(535 5.7.8 Authentication credentials invalid).",
                535,
                "auth",
            ),
            ErrorCategory.SECURITY_POLICY,
        ),
        (
            failure("The SMTP server does not offer AUTH, so user 'agent' cannot log in.", kind="auth"),
            ErrorCategory.SECURITY_POLICY,
        ),
        (failure("KeyError: '5.1.1'", kind="internal"), ErrorCategory.INTERNAL),
    ],
)
def test_a_failed_send_is_classified_into_the_seeds_categories(
    error: SendFailure, category: ErrorCategory
) -> None:
    assert classify_send_failure(error) is category


def test_the_enhanced_code_decides_over_the_kind_of_failure() -> None:
    greeting_refused = failure(
        "The SMTP server 127.0.0.1:25 refused the connection (554 5.7.1 Blocked).", 554, "connection"
    )
    assert classify_send_failure(greeting_refused) is ErrorCategory.SECURITY_POLICY


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("5.1.1 no such user", "5.1.1"),
        ("550 5.1.1 no such user", "5.1.1"),
        ("550-5.1.1 no such user\r\n550 5.1.1 more", "5.1.1"),
        ("  4.4.7 expired", "4.4.7"),
        ("5.1.10 null MX", "5.1.10"),
        ("5.123.456 three digits each", "5.123.456"),
        ("2.0.0 OK", "2.0.0"),
        ("refused the login (535 5.7.8 invalid).", "5.7.8"),
        ("rejected: 550 5.1.1.", "5.1.1"),
        ("5.1.1234 four digits are not a code", None),
        ("3.1.1 not a class", None),
        ("Exim 4.94.2 says no", None),
        ("relay 10.5.1.2 refused", None),
        ("550 mailbox unavailable\n550 5.1.1 the code is on the second line only", None),
        ("", None),
    ],
)
def test_the_enhanced_code_is_read_from_the_first_line_only(text: str, code: str | None) -> None:
    assert parse_enhanced_status(text) == code


@pytest.mark.parametrize("code", ["5.0.0", "4.9.1", "5.123.1", None, "garbage"])
def test_codes_outside_the_seven_subjects_name_no_category(code: str | None) -> None:
    assert category_for_enhanced_status(code) is None


def test_every_category_names_a_policy_that_a_builtin_plugin_registers() -> None:
    registered = {
        policy.NAME
        for module in (default, rate_limit, progressive, no_retry)
        for policy in module.postroom_register_retry_policies()
    }
    assert set(CATEGORY_POLICIES) == set(ErrorCategory)
    assert set(CATEGORY_POLICIES.values()) <= registered
    assert CATEGORY_POLICIES[ErrorCategory.NO_SUCH_PROVIDER] == "no retry"


class ProviderClassifier:
    """A plugin that knows one provider's non-standard reply."""

    @hookimpl
    def postroom_classify_send_error(self, error: SendFailure, profile: object) -> ErrorCategory | None:
        return ErrorCategory.NETWORK_ROUTING if "try again later" in error.text else None


@pytest.fixture
def plugin_manager() -> Iterator[pluggy.PluginManager]:
    manager = pluggy.PluginManager("postroom")
    manager.add_hookspecs(hooks)
    manager.register(classifier)
    provider = ProviderClassifier()
    manager.register(provider)
    try:
        yield manager
    finally:
        manager.unregister(provider)
        manager.unregister(classifier)


def test_a_plugin_classifier_answers_before_the_builtin_one(plugin_manager: pluggy.PluginManager) -> None:
    hook = plugin_manager.hook.postroom_classify_send_error
    assert hook(error=failure("5.7.1 try again later", 550), profile=None) is ErrorCategory.NETWORK_ROUTING
    assert hook(error=failure("5.7.1 blocked", 550), profile=None) is ErrorCategory.SECURITY_POLICY


def test_the_builtin_classifier_always_answers(plugin_manager: pluggy.PluginManager) -> None:
    hook = plugin_manager.hook.postroom_classify_send_error
    assert hook(error=failure("no code at all"), profile=None) is ErrorCategory.UNIDENTIFIED
