"""Every request of a run validates against the AsyncAPI schemas of the cohort-sync messages
(../shared/seeds/002_19af2ee7c700c5e5.txt, copied here as JSON Schema), as an independent
receiver checks them."""

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.conftest import run_now, set_members

pytestmark = pytest.mark.django_db

MEMBER = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "format": "email"},
        "mixpanel_distinct_id": {"type": "string"},
        "first_name": {"type": "string"},
        "last_name": {"type": "string"},
        "phone_number": {"type": "string"},
    },
    "required": ["mixpanel_distinct_id"],  # "Mixpanel always sends mixpanel_distinct_id"
}
PARAMETERS = {
    "type": "object",
    "required": ["mixpanel_project_id", "mixpanel_cohort_id", "mixpanel_session_id", "page_info", "members"],
    "properties": {
        "mixpanel_project_id": {"type": "string"},
        "mixpanel_cohort_name": {"type": "string"},
        "mixpanel_cohort_id": {"type": "string"},
        "mixpanel_cohort_description": {"type": "string"},
        "mixpanel_session_id": {"type": "string"},
        "page_info": {
            "type": "object",
            "properties": {"total_pages": {"type": "integer"}, "page_count": {"type": "integer"}},
            "required": ["total_pages", "page_count"],
        },
        "members": {"type": "array", "items": MEMBER, "maxItems": 1000},
    },
}
PAYLOAD = {
    "oneOf": [
        {"type": "object", "required": ["action", "parameters"],
         "properties": {"action": {"enum": [action]}, "parameters": PARAMETERS}}
        for action in ("members", "add_members", "remove_members")
    ]
}
VALIDATOR = Draft202012Validator(PAYLOAD, format_checker=FormatChecker())


def test_full_diff_empty_and_refresh_runs_match_the_asyncapi_schemas(make_sync, receiver):
    people = [f"user-{i:05d}" for i in range(2_500)]
    sync = make_sync(members=people, properties=["plan"])

    run_now(sync)
    set_members(sync.cohort, people[100:] + [f"new-{i:04d}" for i in range(1_200)])
    run_now(sync)
    run_now(sync)
    set_members(sync.cohort, people[200:])
    run_now(sync, full=True)  # members, then the removals in a session of their own

    actions = [request.action for request in receiver.requests]
    assert actions == (["members"] * 3 + ["add_members"] * 2 + ["remove_members"] + ["add_members", "remove_members"]
                       + ["members"] * 3 + ["remove_members"] * 2)
    for request in receiver.requests:
        errors = sorted(VALIDATOR.iter_errors(request.json), key=str)
        assert not errors, f"{request.action} page {request.page_info}: {errors[0].message}"
        page_info = request.page_info
        assert 1 <= page_info["page_count"] <= page_info["total_pages"]


def test_the_schema_check_can_fail(make_sync, receiver):
    bad = {"action": "members", "parameters": {"mixpanel_project_id": 1, "mixpanel_cohort_id": "1",
                                                "mixpanel_session_id": "s", "page_info": {}, "members": [{}]}}
    assert list(VALIDATOR.iter_errors(bad))
