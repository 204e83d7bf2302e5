"""The vendors' own Python clients, pointed at a live Cohortsync: what they send is stored, as
profiles and events a rule cohort is computed over."""

from datetime import UTC, datetime, timedelta

import mixpanel
import pytest
import requests
from segment.analytics import Client as SegmentClient
from segment.analytics.request import APIError

from access.services import api_key_create
from cohorts.models import Cohort, Event, Profile
from cohorts.selectors import cohort_member_profiles
from tests.factories import CohortFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _segment(host: str, write_key: str, **options) -> SegmentClient:
    errors = []
    client = SegmentClient(write_key, host=host, gzip=True, max_retries=3, upload_interval=0.05,
                           on_error=lambda error, batch: errors.append(error), **options)
    client.errors = errors
    return client


def _rule_cohort(project, event: str) -> Cohort:
    return CohortFactory(project=project, kind=Cohort.Kind.RULES, definition={"match": "all", "conditions": [
        {"type": "property", "property": "plan", "operator": "equals", "value": "pro"},
        {"type": "event", "event": event, "operator": "at_least", "count": 2, "within_days": 7},
    ]})


def test_segment_identify_track_batch_through_gzip_and_a_retry(live_server, flaky_proxy, ingest_project, write_key):
    # Through the proxy: the first batch is stored, its answer lost (503); the retry is a duplicate.
    client = _segment(flaky_proxy.url, write_key)
    client.identify("ada", {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
                            "phone": "+44 1", "plan": "pro"})
    client.identify("bob", {"email": "bob@example.com", "plan": "pro"})
    client.identify("cy", {"plan": "free"})
    now = datetime.now(tz=UTC)
    for person, times in (("ada", 2), ("bob", 1), ("cy", 3)):
        for n in range(times):
            client.track(person, "Played song", {"song": f"s{n}"}, timestamp=now - timedelta(hours=n))
    client.page("ada", "Docs", "Pricing", {"path": "/pricing"}, context={"ip": "10.0.0.1"})
    client.alias("ada", "ada-old")
    client.flush()
    client.shutdown()

    assert client.errors == []
    assert flaky_proxy.requests >= 2  # the 503 was retried
    ada = Profile.objects.get(project=ingest_project, distinct_id="ada")
    assert (ada.email, ada.first_name, ada.last_name, ada.phone_number) == ("ada@example.com", "Ada", "Lovelace",
                                                                             "+44 1")
    assert ada.properties == {"plan": "pro"}
    events = Event.objects.filter(project=ingest_project)
    assert events.filter(name="Played song").count() == 6  # not 12: messageId de-duplicated the retry
    page = events.get(name="$page")
    assert page.properties["path"] == "/pricing" and page.properties["name"] == "Pricing"
    assert page.properties["$context"] == {"ip": "10.0.0.1"}  # less `library`, the same on every event
    members = cohort_member_profiles(cohort=_rule_cohort(ingest_project, "Played song"))
    assert sorted(members.values_list("distinct_id", flat=True)) == ["ada"]


def test_segment_a_bearer_api_key_works_as_the_write_key(live_server, ingest_project):
    _, api_key = api_key_create(project=ingest_project, name="server")
    # The client sends only Basic: one call by hand.
    answer = requests.post(f"{live_server.url}/v1/identify", json={"userId": "dee", "traits": {"plan": "pro"}},
                           headers={"Authorization": f"Bearer {api_key}"}, timeout=5)
    assert answer.status_code == 200 and answer.json()["success"] is True
    assert Profile.objects.get(project=ingest_project, distinct_id="dee").properties == {"plan": "pro"}


def test_segment_refused_write_key_is_reported_not_stored(live_server, ingest_project):
    client = _segment(live_server.url, "csw_not-a-key", sync_mode=True)
    with pytest.raises(APIError) as refused:
        client.track("ada", "Played song")
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    assert not Event.objects.exists()


def test_mixpanel_track_engage_import_with_retries(live_server, flaky_proxy, ingest_project, mixpanel_token,
                                                   mixpanel_secret):
    consumer = mixpanel.Consumer(events_url=f"{flaky_proxy.url}/track", people_url=f"{live_server.url}/engage",
                                 import_url=f"{live_server.url}/import", groups_url=f"{live_server.url}/groups",
                                 retry_backoff_factor=0)
    # The client mounts its retrying adapter on https:// only; the loopback server speaks http.
    consumer._session.mount("http://", consumer._session.get_adapter("https://"))
    mp = mixpanel.Mixpanel(mixpanel_token, consumer=consumer)
    mp.people_set("ada", {"$email": "ada@example.com", "$first_name": "Ada", "plan": "pro"})
    mp.people_set_once("ada", {"first_seen": "2026-01-01", "plan": "free"})
    mp.people_set("bob", {"plan": "pro", "temp": 1})
    mp.people_unset("bob", ["temp"])
    mp.people_set("gone", {"plan": "pro"})
    mp.people_delete("gone")
    mp.people_increment("ada", {"logins": 1})
    mp.people_increment("ada", {"logins": 2, "spent": 1.5})
    mp.people_append("ada", {"tags": "a"})
    mp.people_union("ada", {"tags": ["a", "b", "c"]})
    mp.people_remove("ada", {"tags": "a"})
    with pytest.raises(mixpanel.MixpanelException, match=r"\$add\.plan the profile's value is a string"):
        mp.people_increment("ada", {"plan": 1})
    mp.group_set("company", "Acme", {"plan": "pro"})  # acknowledged, not stored
    mp.group_union("company", "Acme", {"regions": ["eu"]})

    mp.track("ada", "Opened app", {"screen": "home"})  # the first answer is lost: retried, stored once
    mp.track("ada", "Opened app")
    mp.track("bob", "Opened app")
    last_month = int((datetime.now(tz=UTC) - timedelta(days=30)).timestamp())
    with pytest.raises(mixpanel.MixpanelException, match="5 days"):
        mp.track("bob", "Opened app", {"time": last_month})
    mp.import_data(None, "bob", "Opened app", last_month, api_secret=mixpanel_secret)

    assert flaky_proxy.requests >= 2
    ada = Profile.objects.get(project=ingest_project, distinct_id="ada")
    assert (ada.email, ada.first_name) == ("ada@example.com", "Ada")
    assert ada.properties == {"plan": "pro", "first_seen": "2026-01-01", "logins": 3, "spent": 1.5, "tags": ["b", "c"]}
    assert not Profile.objects.filter(distinct_id="Acme").exists()
    assert Profile.objects.get(project=ingest_project, distinct_id="bob").properties == {"plan": "pro"}
    assert not Profile.objects.filter(distinct_id="gone").exists()
    opened = Event.objects.filter(project=ingest_project, name="Opened app")
    assert opened.filter(distinct_id="ada").count() == 2
    assert opened.filter(distinct_id="bob").count() == 2
    first = opened.filter(distinct_id="ada", properties__screen="home").get()
    assert set(first.properties) >= {"$insert_id", "mp_lib"} and "token" not in first.properties
    members = cohort_member_profiles(cohort=_rule_cohort(ingest_project, "Opened app"))
    assert list(members.values_list("distinct_id", flat=True)) == ["ada"]  # bob's second is 30 days old


def test_mixpanel_buffered_import_with_service_account(live_server, ingest_project, mixpanel_token):
    _, api_key = api_key_create(project=ingest_project, name="importer")
    credentials = mixpanel.ServiceAccountCredentials("importer", api_key, str(ingest_project.pk))
    consumer = mixpanel.BufferedConsumer(max_size=50, import_url=f"{live_server.url}/import",
                                         credentials=credentials)
    mp = mixpanel.Mixpanel(mixpanel_token, consumer=consumer)
    old = int((datetime.now(tz=UTC) - timedelta(days=20)).timestamp())
    for n in range(120):
        mp.import_data(None, f"user-{n % 7}", "Purchased", old + n, properties={"amount": n})
    consumer.flush()
    assert Event.objects.filter(project=ingest_project, name="Purchased").count() == 120

    wrong = mixpanel.ServiceAccountCredentials("importer", "cs_not-a-key", str(ingest_project.pk))
    consumer = mixpanel.Consumer(import_url=f"{live_server.url}/import", credentials=wrong)
    with pytest.raises(mixpanel.MixpanelException):
        mixpanel.Mixpanel(mixpanel_token, consumer=consumer).import_data(None, "x", "Purchased", old)
