"""The alerts' panels on the sync and cohort pages (outbound.pages): the alerts watching the
page's subject, each with its recent firings. The dashboard lists recent firings itself."""

from . import selectors


def sync_alerts_panel(*, user, subject) -> dict:
    return {"alerts": selectors.alert_list_for_sync(sync=subject), "subject": "sync"}


def cohort_alerts_panel(*, user, subject) -> dict:
    return {"alerts": selectors.alert_list_for_cohort(cohort=subject), "subject": "cohort"}
