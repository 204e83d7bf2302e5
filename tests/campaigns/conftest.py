import pytest

from campaigns.services import message_create
from tests.conftest import set_members
from tests.factories import CohortFactory, ConnectionFactory, UserFactory
from tests.support.pages import member, member_client, project  # noqa: F401  (the status pages' fixtures)


@pytest.fixture
def make_message(receiver):
    """A message to the loopback receiver for a fresh static cohort of these distinct ids."""

    def factory(members=(), *, schedule="asap", connection_fields=None, **fields):
        cohort = CohortFactory()
        connection = ConnectionFactory(project=cohort.project, url=receiver.url(), **(connection_fields or {}))
        set_members(cohort, list(members))
        return message_create(cohort=cohort, connection=connection, name="Win back", schedule=schedule,
                              created_by=UserFactory(), **fields)

    return factory


def sent_ids(receiver) -> list[str]:
    """Every distinct id the receiver got, in order, across all batches."""
    return [user["$distinct_id"] for request in receiver.requests for user in request.form_users]


def batch_sizes(receiver) -> list[int]:
    return [len(request.form_users) for request in receiver.requests]
