"""Each payload format on the wire, end to end through the engine to a loopback receiver:
full, diff and empty runs, retries, page size and content type (integrations/payloads.py,
docs/contract.md "The `amplitude` body")."""

import json

import pytest
from django.core.exceptions import ValidationError

from deliveries.models import SyncRun
from integrations.payloads import MemberRow, mixpanel_members, page_id
from integrations.services import connection_update
from integrations.templating import PRESETS
from outbound.policy import MAX_EXPORTED_PROPERTIES
from tests.conftest import run_now, set_members
from tests.factories import ProfileFactory, SyncFactory
from tests.support.receiver import Reply

pytestmark = pytest.mark.django_db


def use_format(sync, **fields):
    """Switch the sync's connection through the service, so its validation runs too."""
    connection_update(connection=sync.connection, **fields)


def profiles(sync, spec: dict[str, dict]) -> None:
    """Profiles of the sync's project, by distinct id, with the given fields."""
    for distinct_id, fields in spec.items():
        ProfileFactory(project=sync.cohort.project, distinct_id=distinct_id, **fields)


def first_run(sync, receiver) -> SyncRun:
    run = run_now(sync)
    assert run.status == SyncRun.Status.SUCCEEDED
    receiver.clear()
    return run


def user_ids(body: dict) -> list[str]:
    return [user["user_id"] for user in body["users"]]


# --- mixpanel -------------------------------------------------------------------------


def test_mixpanel_members_carry_selected_properties_beside_the_identity_fields(make_sync, receiver):
    sync = make_sync(properties=["plan", "email", "first_name", "phone_number", "score", "absent"])
    profiles(sync, {
        "A": {"email": "a@example.com", "first_name": "Ada", "last_name": "Lovelace", "phone_number": "+1-555",
              "properties": {"plan": "pro", "score": 42, "first_name": "not the column", "secret": "not selected"}},
        "B": {"email": "", "first_name": "", "last_name": "", "phone_number": "",
              "properties": {"plan": "free", "email": "from properties"}},
    })
    set_members(sync.cohort, ["A", "B"])

    run_now(sync)

    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert request.members == [
        {"mixpanel_distinct_id": "A", "email": "a@example.com", "first_name": "Ada", "last_name": "Lovelace",
         "phone_number": "+1-555", "plan": "pro", "score": 42},
        # Identity names read their columns: an empty column sends nothing, whatever properties hold.
        {"mixpanel_distinct_id": "B", "plan": "free"},
    ]


def test_mixpanel_without_selected_properties_sends_identity_fields_only(make_sync, receiver):
    sync = make_sync()
    profiles(sync, {"A": {"email": "a@example.com", "first_name": "Ada", "last_name": "", "phone_number": "",
                          "properties": {"plan": "pro"}}})
    set_members(sync.cohort, ["A"])

    run_now(sync)

    assert receiver.requests[0].members == [{"mixpanel_distinct_id": "A", "email": "a@example.com",
                                             "first_name": "Ada"}]


# --- amplitude ------------------------------------------------------------------------


def test_mixpanel_members_ignore_properties_that_are_not_an_object_and_never_override_a_field():
    rows = [
        MemberRow("A", None, None, None, None, '["plan"]'),
        MemberRow("B", "b@example.com", None, None, None, '{"mixpanel_distinct_id": "X", "plan": "pro", "email": "E"}'),
        MemberRow("C", None, None, None, None, None),
    ]

    members = mixpanel_members(rows, ("mixpanel_distinct_id", "plan", "email"))

    assert members == [
        {"mixpanel_distinct_id": "A"},
        {"mixpanel_distinct_id": "B", "email": "b@example.com", "plan": "pro"},
        {"mixpanel_distinct_id": "C"},
    ]


def test_amplitude_full_run_sends_everyone_in_cohort(make_sync, receiver):
    sync = make_sync(properties=["plan", "email"])
    profiles(sync, {
        "A": {"email": "a@example.com", "properties": {"plan": "pro", "score": 1}},
        "B": {"email": "b@example.com", "properties": {"score": 2}},
    })
    set_members(sync.cohort, ["A", "B", "C"])
    use_format(sync, format="amplitude")

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "cohort_name": sync.cohort.name,
        "cohort_id": str(sync.cohort.pk),
        "in_cohort": True,
        "computed_time": str(int(run.started_at.timestamp())),
        "message_id": page_id(run.session_id, 1),
        "users": [
            {"user_id": "A", "user_properties": {"plan": "pro", "email": "a@example.com"}},
            {"user_id": "B", "user_properties": {"email": "b@example.com"}},
            {"user_id": "C", "user_properties": {"email": "C@example.com"}},
        ],
    }
    assert request.json["message_id"] == request.headers["webhook-id"]


def test_amplitude_diff_run_sends_adds_in_cohort_then_removes_out_of_it(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C", "D"])
    use_format(sync, format="amplitude")
    first_run(sync, receiver)
    set_members(sync.cohort, ["A", "C", "E", "F"])

    run = run_now(sync)

    assert run.kind == SyncRun.Kind.DIFF
    adds, removes = [request.json for request in receiver.requests]
    assert (adds["in_cohort"], user_ids(adds)) == (True, ["E", "F"])
    assert (removes["in_cohort"], user_ids(removes)) == (False, ["B", "D"])
    assert [adds["message_id"], removes["message_id"]] == [page_id(run.session_id, n) for n in (1, 2)]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [adds["message_id"], removes["message_id"]]
    assert adds["computed_time"] == removes["computed_time"] == str(int(run.started_at.timestamp()))
    assert all(user["user_properties"] == {} for user in adds["users"] + removes["users"])


def test_amplitude_run_without_changes_sends_an_empty_add_and_an_empty_remove(make_sync, receiver):
    sync = make_sync(members=["A"])
    use_format(sync, format="amplitude")
    first_run(sync, receiver)

    run_now(sync)

    bodies = [request.json for request in receiver.requests]
    assert [(body["in_cohort"], body["users"]) for body in bodies] == [(True, []), (False, [])]
    assert len({body["message_id"] for body in bodies}) == 2


def test_amplitude_computed_time_is_a_string_of_unix_seconds(make_sync, receiver):
    sync = make_sync(members=["A"])
    use_format(sync, format="amplitude")

    run = run_now(sync)

    computed_time = receiver.requests[0].json["computed_time"]
    assert isinstance(computed_time, str) and computed_time.isdigit()
    assert abs(int(computed_time) - run.started_at.timestamp()) < 1


def test_amplitude_message_id_is_the_same_on_every_retry_of_a_page(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C"])
    use_format(sync, format="amplitude", page_size=2)
    receiver.reply(Reply(status=500), Reply(status=200), Reply(status=503), Reply(status=429))

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    requests = receiver.requests
    assert len(requests) == 5  # page 1 twice, page 2 three times
    message_ids = [request.json["message_id"] for request in requests]
    assert message_ids == [request.headers["webhook-id"] for request in requests]
    first, second = page_id(run.session_id, 1), page_id(run.session_id, 2)
    assert message_ids == [first, first, second, second, second]
    assert requests[0].body == requests[1].body
    assert requests[2].body == requests[3].body == requests[4].body


def test_amplitude_page_size_splits_a_cohort_into_pages(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C", "D", "E"])
    use_format(sync, format="amplitude", page_size=2)

    run_now(sync)

    bodies = [request.json for request in receiver.requests]
    assert [user_ids(body) for body in bodies] == [["A", "B"], ["C", "D"], ["E"]]
    assert len({body["message_id"] for body in bodies}) == 3


# --- template -------------------------------------------------------------------------


def expected_template_body(preset: str, amplitude_body: dict):
    """What each preset renders, in terms of the amplitude format's body for the same page."""
    if preset == "amplitude_user_properties":
        return amplitude_body
    if preset == "amplitude_user_ids":
        return {**amplitude_body, "users": [{"user_id": user["user_id"]} for user in amplitude_body["users"]]}
    key = f"amplitude_{amplitude_body['cohort_name']}_{amplitude_body['cohort_id']}"
    return [{"user_id": user["user_id"], key: amplitude_body["in_cohort"]} for user in amplitude_body["users"]]


@pytest.fixture
def template_sync(make_sync, receiver):
    def factory(preset: str, members):
        sync = make_sync(properties=["plan"])
        profiles(sync, {"A": {"properties": {"plan": "pro"}}, "B": {"properties": {"plan": 'say "hi"\n'}}})
        set_members(sync.cohort, list(members))
        use_format(sync, format="template", body_template=PRESETS[preset])
        return sync

    return factory


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_template_full_run_renders_each_preset(template_sync, receiver, preset):
    sync = template_sync(preset, ["A", "B", "C"])

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    (request,) = receiver.requests
    amplitude = {
        "cohort_name": sync.cohort.name, "cohort_id": str(sync.cohort.pk), "in_cohort": True,
        "computed_time": str(int(run.started_at.timestamp())), "message_id": page_id(run.session_id, 1),
        "users": [{"user_id": "A", "user_properties": {"plan": "pro"}},
                  {"user_id": "B", "user_properties": {"plan": 'say "hi"\n'}},
                  {"user_id": "C", "user_properties": {}}],
    }
    assert json.loads(request.body) == expected_template_body(preset, amplitude)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_template_diff_run_renders_adds_and_removes_with_each_preset(template_sync, receiver, preset):
    sync = template_sync(preset, ["A", "C"])
    first_run(sync, receiver)
    set_members(sync.cohort, ["B", "C"])

    run = run_now(sync)

    adds, removes = [json.loads(request.body) for request in receiver.requests]
    common = {"cohort_name": sync.cohort.name, "cohort_id": str(sync.cohort.pk),
              "computed_time": str(int(run.started_at.timestamp()))}
    assert adds == expected_template_body(preset, {
        **common, "in_cohort": True, "message_id": page_id(run.session_id, 1),
        "users": [{"user_id": "B", "user_properties": {"plan": 'say "hi"\n'}}]})
    assert removes == expected_template_body(preset, {
        **common, "in_cohort": False, "message_id": page_id(run.session_id, 2),
        "users": [{"user_id": "A", "user_properties": {"plan": "pro"}}]})


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_template_run_without_changes_renders_empty_pages_with_each_preset(template_sync, receiver, preset):
    sync = template_sync(preset, ["A"])
    first_run(sync, receiver)

    run = run_now(sync)

    bodies = [json.loads(request.body) for request in receiver.requests]
    common = {"cohort_name": sync.cohort.name, "cohort_id": str(sync.cohort.pk),
              "computed_time": str(int(run.started_at.timestamp())), "users": []}
    assert bodies == [
        expected_template_body(preset, {**common, "in_cohort": True, "message_id": page_id(run.session_id, 1)}),
        expected_template_body(preset, {**common, "in_cohort": False, "message_id": page_id(run.session_id, 2)}),
    ]


def test_template_sees_our_session_and_page_fields(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C"])
    template = ('{"action": {{ input.action | json }}, "session": {{ input.session_id | json }}, '
                '"page": {{ input.page_count }}, "of": {{ input.total_pages }}, '
                '"project": {{ input.project_id | json }}, "description": {{ input.cohort_description | json }}}')
    use_format(sync, format="template", body_template=template, page_size=2)

    run = run_now(sync)

    assert [request.json for request in receiver.requests] == [
        {"action": "members", "session": str(run.session_id), "page": n, "of": 2,
         "project": str(sync.cohort.project_id), "description": sync.cohort.description}
        for n in (1, 2)
    ]


def test_template_that_fails_on_a_real_page_pauses_the_sync(make_sync, receiver):
    # Valid on every sample page at save (all of the cohort "Pro users"); on this cohort's empty
    # diff page there is no users[0].
    sync = make_sync(members=["A"])
    use_format(sync, format="template", body_template=(
        '{"first": {{ (1 if input.cohort_name == "Pro users" else input.users[0].user_id) | json }}}'))
    first_run(sync, receiver)

    run = run_now(sync)

    assert run.status == SyncRun.Status.PAUSED
    assert run.error_message.startswith("the payload template failed on page 1: line 1: ")
    assert receiver.requests == []


# --- Page size and content type ---------------------------------------------------------


def test_page_size_2_sends_a_5_member_cohort_in_3_pages(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C", "D", "E"])
    use_format(sync, page_size=2)

    run = run_now(sync)

    assert run.total_pages == 3
    requests = receiver.requests
    assert [[m["mixpanel_distinct_id"] for m in request.members] for request in requests] == [
        ["A", "B"], ["C", "D"], ["E"]]
    assert [request.page_info for request in requests] == [{"total_pages": 3, "page_count": n} for n in (1, 2, 3)]
    assert [request.headers["webhook-id"] for request in requests] == [page_id(run.session_id, n) for n in (1, 2, 3)]


def test_page_size_applies_to_each_action_of_a_diff(make_sync, receiver):
    sync = make_sync(members=["A", "B", "C"])
    use_format(sync, page_size=2)
    first_run(sync, receiver)
    set_members(sync.cohort, ["D", "E", "F"])

    run_now(sync)

    assert [(r.action, len(r.members), r.page_info["page_count"]) for r in receiver.requests] == [
        ("add_members", 2, 1), ("add_members", 1, 2), ("remove_members", 2, 3), ("remove_members", 1, 4)]
    assert {r.page_info["total_pages"] for r in receiver.requests} == {4}


@pytest.mark.parametrize(("format", "content_type"), [
    ("mixpanel", "application/vnd.cohorts+json; charset=utf-8"),
    ("amplitude", "application/json; charset=utf-8"),
    ("template", "text/plain; charset=utf-8"),
])
def test_the_connection_content_type_is_sent(make_sync, receiver, format, content_type):
    sync = make_sync(members=["A"])
    template = "cohort {{ input.cohort_id }}: {{ input.users | join(',', attribute='user_id') }}"
    use_format(sync, format=format, content_type=content_type, body_template=template if format == "template" else "")

    run = run_now(sync)

    assert run.status == SyncRun.Status.SUCCEEDED
    (request,) = receiver.requests
    assert request.headers["content-type"] == content_type
    assert request.headers["user-agent"].startswith("Cohortsync/")
    if format == "template":
        assert request.body == f"cohort {sync.cohort.pk}: A".encode()


# --- Property selection -------------------------------------------------------------------


def test_at_most_50_properties_can_be_selected():
    sync = SyncFactory()
    sync.properties = [f"p{i}" for i in range(MAX_EXPORTED_PROPERTIES)]
    sync.full_clean()

    sync.properties = [f"p{i}" for i in range(MAX_EXPORTED_PROPERTIES + 1)]
    with pytest.raises(ValidationError) as caught:
        sync.full_clean()
    assert caught.value.message_dict["properties"] == ["At most 50 properties can be exported."]


@pytest.mark.parametrize("properties", [["plan", "plan"], ["plan", ""], "plan", [1]])
def test_property_selection_must_be_a_list_of_distinct_names(properties):
    sync = SyncFactory()
    sync.properties = properties
    with pytest.raises(ValidationError) as caught:
        sync.full_clean()
    assert "properties" in caught.value.message_dict
