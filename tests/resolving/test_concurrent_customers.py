"""Two fetches meeting the same new sender at the same moment end with one customer, nothing quarantined."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from postroom.core.app import Postroom
from postroom.core.data import directory, profiles, rules
from postroom.core.data.models import Customer, CustomerEmail, Message, MessageStatus
from postroom.core.data.profiles import ProfileFields
from postroom.core.inbound.pipeline import InboundPipeline
from tests.support.mail import make_mail

ROUNDS = 10


def test_two_workers_storing_mail_of_one_new_sender_at_once_share_one_customer(pg_database_url: str) -> None:
    app = Postroom(pg_database_url)
    with app.transaction() as session:
        campaign = directory.add_campaign(session, 1, "Support")
        queue = directory.add_queue(session, campaign, "First line")
        for name in ("one", "two"):
            profile = profiles.create_profile(session, app.plugins, 1, name, ProfileFields())
            rules.add_rule(session, profile, campaign, queue)
    errors: list[BaseException] = []

    def store(profile_name: str, sender: str, barrier: threading.Barrier) -> None:
        try:
            with app.sessions() as session, session.begin():
                profile = profiles.get_profile(session, profile_name, 1)
                pipeline = InboundPipeline(session, app.plugins, profile)
                raw = make_mail(f"Hello from {profile_name}", sender=sender)
                barrier.wait()
                pipeline.store_batch([(f"{profile_name}-{sender}", raw)])
        except BaseException as error:
            errors.append(error)

    for number in range(ROUNDS):
        sender = f"new-{number}@customer.test"
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=store, args=(name, sender, barrier)) for name in ("one", "two")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    with app.transaction() as session:
        statuses = session.execute(select(Message.status, func.count()).group_by(Message.status)).all()
        assert dict(statuses) == {MessageStatus.TICKETED: 2 * ROUNDS}
        assert session.scalar(select(func.count()).select_from(CustomerEmail)) == ROUNDS
        assert session.scalar(select(func.count()).select_from(Customer)) == ROUNDS
    app.dispose()
