"""The cohort page (cohorts/views.py) through Django's test client: its size history and the
panels of the apps above (syncs, messages, alerts)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertFiring
from cohorts.models import CohortSize
from cohorts.services import cohort_size_record
from tests.factories import CohortFactory
from tests.support.pages import cohort_url, fire, message_in, message_url, sync_in, sync_url

pytestmark = pytest.mark.django_db


# --- The cohort page --------------------------------------------------------------------------


def test_the_cohort_page_shows_its_size_history_syncs_messages_and_alerts(member_client, project):
    message = message_in(project, name="Win back")
    cohort = message.cohort
    sync = sync_in(project, cohort=cohort, connection__name="Ads audience")
    now = timezone.now()
    for hours_ago, size in [(3, 40), (2, 45), (1, 38)]:
        CohortSize.objects.create(cohort=cohort, size=size, computed_at=now - timedelta(hours=hours_ago))
    alert = Alert.objects.create(project=project, name="Lapsed buyers shrink", kind=Alert.Kind.COHORT_SIZE_CHANGE,
                                 operator=Alert.Operator.DECREASES_BY, threshold=10, cohort=cohort)
    fire(alert, "Lapsed buyers shrank by 15.6% (45 → 38)", status=AlertFiring.Status.DELIVERED,
         cohort_size=CohortSize.objects.get(size=38))
    Alert.objects.create(project=project, name="Quiet one", kind=Alert.Kind.COHORT_SIZE,
                         operator=Alert.Operator.GREATER_THAN, threshold=1000, cohort=cohort)

    response = member_client.get(cohort_url(cohort))

    assert response.status_code == 200
    assert [(row.size, row.change) for row in response.context["recent_sizes"]] == [(38, -7), (45, 5), (40, None)]
    html = response.content.decode()
    history = html[html.index('id="size-history"'):html.index('id="syncs"')]
    assert '<svg class="chart__svg"' in history and "Cohort size went from 40 to 38 over 3 measurements" in history
    assert ">+5<" in history and ">-7<" in history
    assert f'href="{sync_url(sync)}"' in html and "Ads audience" in html
    assert f'href="{message_url(message)}"' in html and "Win back" in html
    assert "Fires when its size shrinks by at least 10% between computations" in html
    assert "Lapsed buyers shrank by 15.6% (45 → 38)" in html and "Delivered" in html
    assert 'href="#size-history"' in html  # the firing's root cause
    assert "Quiet one" in html and "It has not fired yet." in html


def test_a_cohort_without_measurements_says_so(member_client, project):
    cohort = CohortFactory(project=project)

    response = member_client.get(cohort_url(cohort))

    assert response.status_code == 200 and response.context["chart"] is None
    assert b"No size history yet" in response.content and b"No sync sends this cohort." in response.content


def test_another_projects_cohort_is_a_404(member_client, project):
    other = CohortFactory(name="Someone else's cohort")
    cohort_size_record(cohort=other, size=12)

    response = member_client.get(cohort_url(other))

    assert response.status_code == 404 and b"Someone else" not in response.content


def test_cohort_names_link_to_their_page(member_client, project):
    sync = sync_in(project)

    assert f'href="{cohort_url(sync.cohort)}"'.encode() in member_client.get("/").content
    assert f'href="{cohort_url(sync.cohort)}"'.encode() in member_client.get(sync_url(sync)).content
