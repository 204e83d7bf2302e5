"""Success rate and latency percentiles over the last day (observability/selectors.py), and where
they show: the sync page and the connection's admin page."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deliveries.models import SyncRun
from observability import selectors
from tests.factories import ConnectionFactory, DeliveryAttemptFactory, SyncFactory, SyncRunFactory, UserFactory

pytestmark = pytest.mark.django_db


def runs_of(sync, *statuses, days_ago: float = 0) -> list[SyncRun]:
    runs = [SyncRunFactory(sync=sync, status=status) for status in statuses]
    if days_ago:  # started_at is auto_now_add
        SyncRun.objects.filter(pk__in=[r.pk for r in runs]).update(started_at=timezone.now() - timedelta(days=days_ago))
    return runs


def tries(run, latencies) -> None:
    for n, latency in enumerate(latencies, start=1):
        DeliveryAttemptFactory(source=run, page_number=n, latency_ms=latency)


@pytest.fixture
def sync():
    return SyncFactory()


def test_success_rate_counts_finished_runs_of_the_last_day(sync):
    runs_of(sync, "succeeded", "succeeded", "succeeded", "failed", "running", "queued", "skipped")
    runs_of(sync, "failed", "failed", days_ago=2)  # outside the window
    runs_of(SyncFactory(), "failed")  # another sync

    stats = selectors.sync_delivery_stats(sync_id=sync.pk)

    assert (stats.runs_succeeded, stats.runs_finished) == (3, 4)
    assert stats.success_rate == 0.75


def test_latency_percentiles_interpolate_like_percentile_cont(sync):
    first, second = runs_of(sync, "succeeded", "failed")
    tries(first, range(100, 0, -2))  # 100, 98, …, 2
    tries(second, range(99, 0, -2))  # 99, 97, …, 1
    tries(runs_of(sync, "succeeded", days_ago=2)[0], [50_000])  # an old run's tries do not count

    stats = selectors.sync_delivery_stats(sync_id=sync.pk)

    assert stats.attempts == 100
    assert stats.p50 == pytest.approx(50.5)
    assert stats.p95 == pytest.approx(95.05)
    assert stats.p99 == pytest.approx(99.01)


def test_one_try_and_none(sync):
    assert selectors.sync_delivery_stats(sync_id=sync.pk).latency_ms == {0.5: None, 0.95: None, 0.99: None}
    assert selectors.sync_delivery_stats(sync_id=sync.pk).success_rate is None
    tries(runs_of(sync, "succeeded")[0], [42])
    stats = selectors.sync_delivery_stats(sync_id=sync.pk)
    assert (stats.p50, stats.p95, stats.p99) == (42, 42, 42)


def test_connection_stats_cover_every_sync_to_it(sync):
    other_sync = SyncFactory(connection=sync.connection, cohort__project=sync.connection.project)
    tries(runs_of(sync, "succeeded")[0], [10, 20])
    tries(runs_of(other_sync, "paused")[0], [30])
    tries(runs_of(SyncFactory(connection=ConnectionFactory()), "succeeded")[0], [1000])

    stats = selectors.connection_delivery_stats(connection_id=sync.connection_id)

    assert (stats.runs_succeeded, stats.runs_finished, stats.attempts) == (1, 2, 3)
    assert stats.p50 == 20


def test_the_sync_page_shows_the_last_day(client, sync):
    member = UserFactory()
    sync.cohort.project.members.add(member)
    client.force_login(member)
    tries(runs_of(sync, "succeeded", "succeeded", "succeeded", "failed")[0], [100, 200, 300])

    page = client.get(reverse("deliveries:sync_detail", kwargs={"sync_id": sync.pk})).content.decode()

    assert "Last 24 hours" in page
    assert "75% <span class=\"muted\">(3 of 4 finished runs succeeded)" in page
    assert "p50 200 ms · p95 290 ms · p99 298 ms" in page


def test_the_connection_admin_page_shows_the_last_day(client, sync):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    tries(runs_of(sync, "succeeded")[0], [7])

    page = client.get(reverse("admin:integrations_connection_change", args=[sync.connection_id])).content.decode()

    assert "Last 24 hours (sync runs)" in page
    assert "100% <span class=\"muted\">(1 of 1 finished runs succeeded)" in page
    assert "p50 7 ms" in page
    add_page = client.get(reverse("admin:integrations_connection_add")).content.decode()
    assert "Last 24 hours" not in add_page
