"""examples/sdk_clients.py against a live Cohortsync: what it sends is stored."""

import sys

import pytest

from cohorts.models import Event, Profile
from examples import sdk_clients

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_example_sends_through_both_clients(live_server, monkeypatch, ingest_project, write_key, mixpanel_token,
                                                mixpanel_secret):
    monkeypatch.setattr(sys, "argv", ["sdk_clients.py", "--host", live_server.url, "--write-key", write_key,
                                      "--token", mixpanel_token, "--secret", mixpanel_secret])
    sdk_clients.main()
    assert sorted(Profile.objects.filter(project=ingest_project).values_list("distinct_id", "email")) == [
        ("user-42", "ada@example.com"), ("user-7", "grace@example.com")]
    assert Event.objects.filter(project=ingest_project).count() == 4  # two from each client
    assert Profile.objects.get(project=ingest_project, distinct_id="user-7").properties["songs_played"] == 1
