"""Every request of a run validates against the AsyncAPI schemas of the cohort-sync messages
(docs/asyncapi.yaml, $refs resolved within the document), tightened where docs/contract.md is
stricter, as an independent receiver checks them."""

import copy
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from tests.conftest import run_now, set_members

pytestmark = pytest.mark.django_db

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
PAYLOADS = ("CohortMembersPayload", "CohortAddMembersPayload", "CohortRemoveMembersPayload")


def contract_components() -> dict:
    components = {"schemas": copy.deepcopy(yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))["components"]["schemas"])}
    schemas = components["schemas"]
    # docs/contract.md: a member always has its distinct id, a page at most 1000 members, and
    # page_info both numbers.
    schemas["CohortMember"]["required"] = ["mixpanel_distinct_id"]
    schemas["CohortSyncParameters"]["properties"]["members"]["maxItems"] = 1000
    schemas["CohortPageInfo"]["required"] = ["total_pages", "page_count"]
    return components


PAYLOAD = {"oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in PAYLOADS],
           "components": contract_components()}
Draft202012Validator.check_schema(PAYLOAD)
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
