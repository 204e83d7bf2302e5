"""The pause email (deliveries/services.notify_sync_paused): what it names, where it links, and its record."""

import pytest

from deliveries import services
from deliveries.models import Notification, Sync
from tests.factories import SyncFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


def test_the_pause_email_names_the_sync_and_links_to_its_page_and_resume_button(mailoutbox, settings):
    settings.COHORTSYNC_BASE_URL = "https://cohortsync.example.com/"
    sync = SyncFactory(cohort__name="Churn & risk", connection__name="CRM webhook")
    run = SyncRunFactory(sync=sync)

    services.sync_pause(sync=sync, message="Invalid API key <revoked>", status=401, run=run)

    (email,) = mailoutbox
    page = f"https://cohortsync.example.com/syncs/{sync.pk}/"
    text = email.body
    ((html, _),) = email.alternatives
    for expected in ("Churn & risk", "CRM webhook", "Invalid API key <revoked>", "401", page, f"{page}#resume"):
        assert expected in text  # plain text is not HTML-escaped
    for expected in ("Churn &amp; risk", "CRM webhook", "Invalid API key &lt;revoked&gt;", "401",
                     f'href="{page}#resume"', f'href="{page}"'):
        assert expected in html
    assert "/admin/" not in text and "/admin/" not in html
    # The shell command works as written in a checkout set up by scripts/quickstart.sh.
    command = f".venv/bin/python manage.py runsync {sync.pk} --resume"
    assert command in text and command in html
    (notification,) = Notification.objects.all()
    assert (notification.recipient, notification.sync, notification.run, notification.reason) == (
        sync.created_by.email, sync, run, "sync_paused"
    )
    assert notification.subject == email.subject
    assert Sync.objects.get(pk=sync.pk).state == Sync.State.PAUSED
