"""Every family of the bounce corpus lands on the failed customer's ticket, escalated (issue 14, must show 1)."""

from __future__ import annotations

from sqlalchemy import select

from postroom.core.app import Postroom
from postroom.core.data.models import Ticket
from tests.bounces.corpus import SAMPLES, land
from tests.support.desk import Desk


def test_every_family_lands_on_the_failed_customers_ticket_escalated(app: Postroom) -> None:
    desk = Desk(app, ["customer"]).setup()
    wrong = []
    for sample in SAMPLES:
        landing = land(app, desk, sample)
        report = landing.report
        assert report is not None, f"{sample.family}: no reader took {sample.file} for a bounce"
        hard = {r.address for r in report.recipients if r.hard}
        soft = {r.address for r in report.recipients if not r.hard}
        assert sample.hard in hard, f"{sample.family}: {sample.hard} not read as a hard failure"
        assert set(sample.soft) <= soft, f"{sample.family}: {sample.soft} not read as soft failures"
        if not landing.right:
            wrong.append(sample.family)
    assert wrong == []


def test_the_soft_recipient_of_a_mixed_report_keeps_its_ticket_unescalated(app: Postroom) -> None:
    desk = Desk(app, ["customer"]).setup()
    aol = next(s for s in SAMPLES if s.soft)
    landing = land(app, desk, aol)
    assert landing.right
    with app.transaction() as session:
        soft_tickets = session.scalars(select(Ticket).where(Ticket.id != landing.customer_ticket)).all()
        assert soft_tickets and not any(t.escalated for t in soft_tickets)
