"""One meaning of a sync's or message's health (outbound/health.py): in SQL and in memory."""

import pytest

from deliveries.models import Sync
from outbound.health import health_of
from tests.factories import SyncFactory

pytestmark = pytest.mark.django_db


def test_paused_failing_and_the_rest_in_that_order_and_the_same_in_memory():
    active = SyncFactory()
    finished_with_error = SyncFactory(state=Sync.State.FINISHED, last_error_message="503 Service Unavailable")
    failing = SyncFactory(last_error_message="401 Unauthorized")
    paused = SyncFactory(state=Sync.State.PAUSED, last_error_message="401 Unauthorized")

    rows = list(Sync.objects.with_health().order_by("attention", "id"))

    assert [(s.pk, s.health) for s in rows] == [
        (paused.pk, "paused"), (failing.pk, "failing"), (active.pk, "active"), (finished_with_error.pk, "finished")]
    assert all(health_of(s) == s.health for s in rows)
    assert list(Sync.objects.failing()) == [failing]
    assert set(Sync.objects.needing_attention()) == {paused, failing}
