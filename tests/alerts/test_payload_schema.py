"""Every alert payload validates against CustomAlertTriggeredPayload of docs/asyncapi.yaml
(components.schemas, $refs resolved within the document), as the notification webhook receives it."""

import copy
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from django.test import override_settings
from jsonschema import Draft202012Validator, FormatChecker

from alerts import services
from alerts.models import Alert
from cohorts.services import cohort_size_record
from deliveries.models import Sync, SyncRun
from tests.factories import SyncFactory, SyncRunFactory, UserFactory

pytestmark = pytest.mark.django_db

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
ALERT_SCHEMAS = ("CustomAlertTriggeredPayload", "AlertMetadata", "AlertCondition", "AlertReport", "AlertLinks")


def alert_components() -> dict:
    document = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return {"schemas": {name: document["components"]["schemas"][name] for name in ALERT_SCHEMAS}}


# jsonschema checks `uri` and `date-time` only with optional packages; these are the RFC rules we rely on.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value) -> bool:
    if not isinstance(value, str):
        return True
    return "T" in value and datetime.fromisoformat(value).tzinfo is not None


@FORMATS.checks("uri")
def _absolute_uri(value) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme in ("http", "https") and parts.netloc) and not any(c.isspace() for c in value)


def validator(components: dict) -> Draft202012Validator:
    schema = {"$ref": "#/components/schemas/CustomAlertTriggeredPayload", "components": components}
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMATS)


COMPONENTS = alert_components()
PAYLOAD = validator(COMPONENTS)


def closed(components: dict) -> dict:
    """The same schemas refusing unknown keys: a misspelt field would otherwise pass."""
    components = copy.deepcopy(components)
    for schema in components["schemas"].values():
        schema["additionalProperties"] = False
    return components


CLOSED_PAYLOAD = validator(closed(COMPONENTS))


def assert_valid(payload: dict) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in CLOSED_PAYLOAD.iter_errors(payload)]
    assert errors == []
    PAYLOAD.validate(payload)


# --- The schema and the checker themselves ----------------------------------------------------


@pytest.mark.parametrize("path, value", [
    (("alert", "fired_at"), "2026-11-25 16:28:00"),  # no timezone, no T
    (("alert", "creator_email"), ""),
    (("alert", "id"), "12"),
    (("condition", "threshold"), "1000"),
    (("condition", "current_value"), 1234),
    (("links", "report_url"), "/cohorts/1/"),  # not absolute
    (("event_type",), "alert"),
])
def test_the_validator_refuses_what_the_schema_forbids(path, value, cohort):
    payload = fire_cohort_size(cohort).payload
    assert_valid(payload)
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    assert not PAYLOAD.is_valid(payload)


def test_the_closed_schema_refuses_an_unknown_key(cohort):
    payload = fire_cohort_size(cohort).payload
    payload["condition"]["treshold"] = 1

    assert PAYLOAD.is_valid(payload)
    assert not CLOSED_PAYLOAD.is_valid(payload)


# --- Payloads of each kind ---------------------------------------------------------------------


def fire_cohort_size(cohort, *, operator=Alert.Operator.GREATER_THAN, threshold=1000, sizes=(1234,), **fields):
    alert = services.alert_create(project=cohort.project, name="Big cohort", kind=Alert.Kind.COHORT_SIZE,
                                  operator=operator, threshold=threshold, cohort=cohort, **fields)
    for size in sizes:
        cohort_size_record(cohort=cohort, size=size)
    (firing,) = services.alerts_evaluate_cohort(cohort_id=cohort.pk)
    assert firing.alert == alert
    return firing


@override_settings(COHORTSYNC_BASE_URL="https://cohortsync.example.com/")
def test_a_cohort_size_payload(cohort, creator):
    firing = fire_cohort_size(cohort, created_by=creator)
    payload = firing.payload

    assert_valid(payload)
    alert = firing.alert
    page = f"https://cohortsync.example.com/cohorts/{cohort.pk}/"
    assert payload == {
        "event_type": "custom_alert_triggered",
        "alert": {
            "id": alert.pk, "name": "Big cohort", "creator": "Ada Lovelace", "creator_email": "ada@example.com",
            "project_id": cohort.project_id, "project_name": "Acme", "fired_at": firing.fired_at.isoformat(),
        },
        "condition": {
            "type": "cohort_size", "operator": "greater_than", "threshold": 1000, "current_value": "1234",
            "formatted_value": "1,234 members",
            "sentence": "Cohort “Pro users” has 1,234 members, above the threshold of 1,000.",
        },
        "report": {"name": "Pro users", "type": "cohort", "url": page},
        "links": {
            "report_url": page,
            "edit_alert_url": f"https://cohortsync.example.com/admin/alerts/alert/{alert.pk}/change/",
            "root_cause_analysis_url": f"{page}#size-history",
        },
    }
    assert datetime.fromisoformat(payload["alert"]["fired_at"]).utcoffset() is not None
    assert firing.sentence == payload["condition"]["sentence"]
    assert firing.current_value == 1234


def test_a_size_below_payload(cohort):
    firing = fire_cohort_size(cohort, operator=Alert.Operator.LESS_THAN, threshold=10.5, sizes=(1,))

    assert_valid(firing.payload)
    condition = firing.payload["condition"]
    assert (condition["threshold"], condition["current_value"], condition["formatted_value"]) == (10.5, "1", "1 member")
    assert condition["sentence"] == "Cohort “Pro users” has 1 member, below the threshold of 10.5."


@pytest.mark.parametrize("operator, sizes, current, formatted, sentence", [
    (Alert.Operator.INCREASES_BY, (1000, 1125), "12.5", "+12.5%",
     "Cohort “Pro users” grew by 12.5% since its previous computation, from 1,000 members to 1,125 members "
     "(the alert fires on an increase of at least 10%)."),
    (Alert.Operator.DECREASES_BY, (1000, 800), "-20", "-20%",
     "Cohort “Pro users” shrank by 20% since its previous computation, from 1,000 members to 800 members "
     "(the alert fires on a decrease of at least 10%)."),
    (Alert.Operator.CHANGES_BY, (3, 2), "-33.33", "-33.3%",
     "Cohort “Pro users” shrank by 33.3% since its previous computation, from 3 members to 2 members "
     "(the alert fires on a change of at least 10%)."),
])
def test_a_cohort_size_change_payload(cohort, operator, sizes, current, formatted, sentence):
    services.alert_create(project=cohort.project, name="Moves", kind=Alert.Kind.COHORT_SIZE_CHANGE,
                          operator=operator, threshold=10, cohort=cohort)
    for size in sizes:
        cohort_size_record(cohort=cohort, size=size)

    (firing,) = services.alerts_evaluate_cohort(cohort_id=cohort.pk)

    assert_valid(firing.payload)
    condition = firing.payload["condition"]
    assert (condition["type"], condition["operator"], condition["threshold"]) == (
        "cohort_size_change", operator, 10)
    assert (condition["current_value"], condition["formatted_value"], condition["sentence"]) == (
        current, formatted, sentence)
    assert firing.cohort_size == firing.alert.cohort.sizes.first()  # the newest size


@override_settings(COHORTSYNC_BASE_URL="https://cohortsync.example.com")
def test_a_sync_paused_payload_links_to_the_run_that_paused_it():
    sync = SyncFactory(cohort__name="Pro users", connection__name="CRM webhook", state=Sync.State.PAUSED,
                       last_error_message="400 Bad Request", last_error_status=400)
    SyncRunFactory(sync=sync, status=SyncRun.Status.SUCCEEDED)
    paused = SyncRunFactory(sync=sync, status=SyncRun.Status.PAUSED, error_message="400 Bad Request")
    services.alert_create(project=sync.cohort.project, name="Paused", kind=Alert.Kind.SYNC_PAUSED,
                          operator=Alert.Operator.IS, threshold=0, sync=sync, created_by=sync.created_by)

    (firing,) = services.alerts_evaluate_sync(sync_id=sync.pk, run_id=paused.pk)

    payload = firing.payload
    assert_valid(payload)
    page = f"https://cohortsync.example.com/syncs/{sync.pk}/"
    assert payload["condition"] == {
        "type": "sync_paused", "operator": "is", "threshold": 0, "current_value": "paused",
        "formatted_value": "paused", "sentence": "The sync of “Pro users” to “CRM webhook” is paused: 400 Bad Request.",
    }
    assert payload["report"] == {"name": "Pro users → CRM webhook", "type": "sync", "url": page}
    assert payload["links"]["report_url"] == page
    assert payload["links"]["root_cause_analysis_url"] == f"{page}?run={paused.pk}#run-{paused.pk}"
    assert firing.sync_run == paused


def test_a_sync_failing_payload_names_the_streak_and_links_to_the_last_failed_run():
    sync = SyncFactory(cohort__name="Pro users", connection__name="CRM webhook")
    for _ in range(2):
        last = SyncRunFactory(sync=sync, status=SyncRun.Status.FAILED, error_message="500 Internal Server Error")
    services.alert_create(project=sync.cohort.project, name="Failing", kind=Alert.Kind.SYNC_FAILING,
                          operator=Alert.Operator.AT_LEAST, threshold=2, sync=sync)

    (firing,) = services.alerts_evaluate_sync(sync_id=sync.pk, run_id=last.pk)

    assert_valid(firing.payload)
    condition = firing.payload["condition"]
    assert (condition["current_value"], condition["formatted_value"]) == ("2", "2 failed runs")
    assert condition["sentence"] == ("The sync of “Pro users” to “CRM webhook” failed 2 runs in a row, "
                                     "the threshold being 2 (last error: 500 Internal Server Error).")
    assert firing.payload["links"]["root_cause_analysis_url"].endswith(f"/syncs/{sync.pk}/?run={last.pk}#run-{last.pk}")


@pytest.mark.parametrize("creator_fields, expected", [
    (None, {}),
    ({"email": ""}, {"creator": "nomail"}),
    ({"email": "", "first_name": "Grace", "last_name": "Hopper"}, {"creator": "Grace Hopper"}),
], ids=["no creator", "no email", "no email, full name"])
def test_a_creator_without_an_email_is_named_without_one(cohort, creator_fields, expected):
    created_by = UserFactory(username="nomail", **creator_fields) if creator_fields is not None else None
    firing = fire_cohort_size(cohort, created_by=created_by)

    assert_valid(firing.payload)
    metadata = firing.payload["alert"]
    assert {key: metadata[key] for key in ("creator", "creator_email") if key in metadata} == expected


def test_the_payload_that_arrives_at_the_webhook_validates(cohort, make_webhook, notifications):
    firing = fire_cohort_size(cohort, webhooks=[make_webhook(cohort.project)])

    services.alert_firing_deliver(firing_id=firing.pk)

    (request,) = notifications.requests
    assert request.headers["content-type"] == "application/json"
    assert_valid(request.json)
    assert request.json == firing.payload
