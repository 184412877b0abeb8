"""The VIP plugin's four hooks, tested as its author would: postroom.testing, no server."""

from __future__ import annotations

from postroom.core.data.directory import DEFAULT_CONTACT_CENTER_ID, add_campaign, add_queue
from postroom.testing import Desk, make_desk


def mail(sender: str, subject: str = "Help", headers: str = "") -> bytes:
    return f"From: {sender}\r\nTo: support@postroom.test\r\nSubject: {subject}\r\n{headers}\r\nHello\r\n".encode()


def vip_campaign(desk: Desk) -> int:
    with desk.app.transaction() as session:
        campaign = add_campaign(session, DEFAULT_CONTACT_CENTER_ID, "VIP")
        add_queue(session, campaign, "Priority")
        return campaign.id


def test_vip_mail_is_tagged_and_routed_to_the_vip_queue_others_follow_the_rules() -> None:
    with make_desk() as desk:
        before = desk.receive(mail("boss@vip.example"))
        campaign_id = vip_campaign(desk)
        vip = desk.receive(mail("boss@vip.example", "Urgent"))
        plain = desk.receive(mail("someone@example.org"))
        assert before is not None and vip is not None and plain is not None
        assert vip.campaign_id == campaign_id != before.campaign_id == plain.campaign_id
        assert [m.tags for m in desk.messages()] == ["vip", "vip", ""]


def test_a_newsletter_is_held_not_put_on_a_ticket() -> None:
    with make_desk() as desk:
        message = desk.deliver(
            mail("news@shop.example", "Offers", "List-Unsubscribe: <mailto:u@shop.example>\r\n")
        )
        assert (message.status, message.ticket_id, message.reason) == (
            "held",
            None,
            "A newsletter, not a customer's mail.",
        )


def test_replies_on_vip_tickets_are_marked_and_carry_the_direct_line() -> None:
    with make_desk() as desk:
        vip_campaign(desk)
        vip, plain = desk.receive(mail("boss@vip.example")), desk.receive(mail("someone@example.org"))
        assert vip is not None and plain is not None
        sent, other = desk.reply(vip, "We are on it."), desk.reply(plain, "We are on it.")
        assert sent["Importance"] == "high" and other["Importance"] is None
        body = sent.get_body(("plain",))
        assert body is not None and "Your direct line: +49 30 1234 5678" in body.get_content()


def test_the_command_says_who_is_a_vip() -> None:
    with make_desk() as desk:
        result = desk.cli("vip", "check", "Boss@VIP.example")
        assert (result.exit_code, result.stdout) == (0, "Boss@VIP.example is a VIP.\n")
