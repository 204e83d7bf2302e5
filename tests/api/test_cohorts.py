"""cohorts/: CRUD of static and rule cohorts, members, preview."""

import pytest

from cohorts.models import Cohort, CohortMember
from tests.conftest import make_profiles, set_members
from tests.factories import CohortFactory, ProfileFactory, SyncFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/cohorts/"
PRO = {"match": "all", "conditions": [{"type": "property", "property": "plan", "operator": "equals", "value": "pro"}]}


def test_create_a_static_cohort(api):
    response = api.post(URL, {"name": "Beta testers", "description": "hand-picked"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["kind"] == "static" and body["member_count"] == 0 and body["definition"] == {}
    assert Cohort.objects.get(pk=body["id"]).project == api.project


def test_create_a_rule_cohort(api):
    ProfileFactory(project=api.project, properties={"plan": "pro"})
    ProfileFactory(project=api.project, properties={"plan": "free"})
    response = api.post(URL, {"name": "Pro", "kind": "rules", "definition": PRO})
    assert response.status_code == 201, response.json()
    assert response.json()["member_count"] == 1
    assert response.json()["definition"] == PRO


def test_rule_definition_errors_name_the_path(api):
    definition = {"conditions": [
        {"type": "property", "property": "plan", "operator": "equals", "value": "pro"},
        {"type": "event", "event": "Play", "within_days": 365},
        {"match": "any", "conditions": [{"type": "property", "property": "age", "operator": "between", "value": 3}]},
    ]}
    response = api.post(URL, {"name": "Bad", "kind": "rules", "definition": definition})
    assert response.status_code == 400
    assert response.json() == {"definition": [
        "definition.conditions[1].within_days: must be a number of days, more than 0 and at most 90",
        "definition.conditions[2].conditions[0].value: between takes [low, high] of number values",
    ]}


def test_a_definition_cannot_refer_to_another_projects_cohort(api, other_project):
    theirs = CohortFactory(project=other_project)
    definition = {"conditions": [{"type": "cohort", "cohort_id": theirs.pk}]}
    response = api.post(URL, {"name": "x", "kind": "rules", "definition": definition})
    assert response.json() == {"definition": [
        f"definition.conditions[0].cohort_id: no cohort {theirs.pk} in this project"]}


def test_a_static_cohort_has_no_definition(api):
    response = api.post(URL, {"name": "x", "definition": PRO})
    assert response.json() == {"definition": ["Only rule cohorts have a definition."]}


def test_list_read_update_delete(api, other_project):
    cohort = CohortFactory(project=api.project, name="Old")
    set_members(cohort, ["a", "b"])
    CohortFactory(project=other_project)
    listed = api.get(URL).json()
    assert [c["id"] for c in listed["results"]] == [cohort.pk] and "member_count" not in listed["results"][0]
    assert api.get(f"{URL}{cohort.pk}/").json()["member_count"] == 2
    response = api.patch(f"{URL}{cohort.pk}/", {"name": "New", "description": "changed"})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"]) == ("New", "changed")
    assert api.delete(f"{URL}{cohort.pk}/").status_code == 204
    assert not Cohort.objects.filter(pk=cohort.pk).exists()


def test_updating_a_rule_definition_validates_it(api):
    cohort = CohortFactory(project=api.project, kind=Cohort.Kind.RULES, definition=PRO)
    response = api.patch(f"{URL}{cohort.pk}/", {"definition": {"match": "some", "conditions": []}})
    assert response.status_code == 400
    assert response.json() == {"definition": ['definition.match: must be "all" or "any"',
                                              "definition.conditions: must be a non-empty list"]}
    cycle = {"conditions": [{"type": "cohort", "cohort_id": cohort.pk}]}
    response = api.patch(f"{URL}{cohort.pk}/", {"definition": cycle})
    assert response.json() == {"definition": [
        f"definition.conditions[0].cohort_id: cohort {cohort.pk} refers back to this cohort (a cycle)"]}


def test_deleting_a_cohort_deletes_its_syncs(api):
    sync = SyncFactory(cohort__project=api.project)
    assert api.delete(f"{URL}{sync.cohort_id}/").status_code == 204
    assert not type(sync).objects.filter(pk=sync.pk).exists()


def test_another_projects_cohort_is_a_404_everywhere(api, other_project):
    cohort = CohortFactory(project=other_project)
    set_members(cohort, ["a"])
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("get", "members/"), ("post", "members/"),
                         ("put", "members/"), ("post", "members/remove/")]:
        response = getattr(api, method)(f"{URL}{cohort.pk}/{path}", {"distinct_ids": ["a"]})
        assert response.status_code == 404, (method, path)
    assert CohortMember.objects.filter(cohort=cohort).count() == 1


# --- Members ------------------------------------------------------------------------------


def test_members_are_listed_a_page_at_a_time(api):
    cohort = CohortFactory(project=api.project)
    ids = [f"p{i:03d}" for i in range(25)]
    set_members(cohort, ids)
    seen, url = [], f"{URL}{cohort.pk}/members/?page_size=10"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 10
        seen += [member["distinct_id"] for member in page["results"]]
        url = page["next"]
    assert seen == ids  # profile id order
    first = api.get(f"{URL}{cohort.pk}/members/").json()["results"][0]
    assert set(first) == {"distinct_id", "email", "first_name", "last_name", "phone_number", "properties",
                          "created_at", "updated_at"}


def test_members_of_a_rule_cohort_are_listed(api):
    ProfileFactory(project=api.project, distinct_id="pro-1", properties={"plan": "pro"})
    ProfileFactory(project=api.project, distinct_id="free-1", properties={"plan": "free"})
    cohort = CohortFactory(project=api.project, kind=Cohort.Kind.RULES, definition=PRO)
    assert [m["distinct_id"] for m in api.get(f"{URL}{cohort.pk}/members/").json()["results"]] == ["pro-1"]


@pytest.mark.parametrize("page_size", ["abc", "0", "1001", "-1", "2.5", "", "１"])
@pytest.mark.parametrize("path", ["", "{pk}/members/"])
def test_a_page_size_that_is_not_1_to_1000_is_a_400(api, path, page_size):
    cohort = CohortFactory(project=api.project)

    response = api.get(f"{URL}{path.format(pk=cohort.pk)}", {"page_size": page_size})

    assert response.status_code == 400
    assert response.json() == {"page_size": ["A whole number from 1 to 1000."]}
    assert api.get(f"{URL}{path.format(pk=cohort.pk)}", {"page_size": "1000"}).status_code == 200


def test_a_bad_cursor_is_a_404(api):
    cohort = CohortFactory(project=api.project)
    assert api.get(f"{URL}{cohort.pk}/members/?cursor=garbage").status_code == 404


def test_add_replace_and_remove_members_of_a_static_cohort(api):
    cohort = CohortFactory(project=api.project)
    make_profiles(api.project, ["a", "b", "c", "d"])
    members = f"{URL}{cohort.pk}/members/"
    response = api.post(members, {"distinct_ids": ["a", "b", "ghost"]})
    assert response.status_code == 200
    assert response.json() == {"added": 2, "removed": 0, "size": 2, "unknown_count": 1, "unknown_sample": ["ghost"],
                               "rejected": 0, "errors": []}
    assert api.post(members, {"distinct_ids": ["a"]}).json()["added"] == 0
    response = api.put(members, {"distinct_ids": ["b", "c", "d"]})
    assert response.json() == {"added": 2, "removed": 1, "size": 3, "unknown_count": 0, "unknown_sample": [],
                               "rejected": 0, "errors": []}
    response = api.post(f"{members}remove/", {"distinct_ids": ["c", "zzz"]})
    assert response.json() == {"added": 0, "removed": 1, "size": 2, "unknown_count": 1, "unknown_sample": ["zzz"],
                               "rejected": 0, "errors": []}
    assert sorted(CohortMember.objects.filter(cohort=cohort).values_list("profile__distinct_id", flat=True)) == [
        "b", "d"]


def test_members_of_another_project_are_unknown(api, other_project):
    cohort = CohortFactory(project=api.project)
    make_profiles(other_project, ["theirs"])
    response = api.post(f"{URL}{cohort.pk}/members/", {"distinct_ids": ["theirs"]})
    assert response.json()["added"] == 0 and response.json()["unknown_count"] == 1


def test_rule_cohorts_take_no_member_lists(api):
    cohort = CohortFactory(project=api.project, kind=Cohort.Kind.RULES, definition=PRO)
    make_profiles(api.project, ["a"])
    for method, path in [("post", "members/"), ("put", "members/"), ("post", "members/remove/")]:
        response = getattr(api, method)(f"{URL}{cohort.pk}/{path}", {"distinct_ids": ["a"]})
        assert response.status_code == 400
        assert response.json() == {"non_field_errors": [
            f"Cohort {cohort.pk} is computed from rules; only static cohorts take member lists."]}
    assert not CohortMember.objects.exists()


def test_member_ids_receivers_would_alter_are_refused_one_by_one(api):
    cohort = CohortFactory(project=api.project)
    make_profiles(api.project, ["a", "ws-user", "c"])
    # Sent as raw JSON: a lone surrogate cannot be encoded by the test client's JSON encoder.
    body = '{"distinct_ids": ["a", " ws-user", "\\ud800x", "c\\u0007", "' + "x" * 256 + '", "", "c"]}'

    response = api.post(f"{URL}{cohort.pk}/members/", body, content_type="application/json")

    assert response.status_code == 200
    assert response.json()["rejected"] == 5
    assert response.json()["errors"] == [
        {"index": 1, "field": None, "message": "must not begin or end with whitespace (receivers would strip it)"},
        {"index": 2, "field": None,
         "message": "must not contain a lone surrogate (U+D800 at character 1): it is not valid Unicode text"},
        {"index": 3, "field": None, "message": "must not contain control characters (U+0007 at character 2)"},
        {"index": 4, "field": None, "message": "must be at most 255 characters"},
        {"index": 5, "field": None, "message": "must not be blank"},
    ]
    assert response.json()["added"] == 2
    assert sorted(CohortMember.objects.filter(cohort=cohort).values_list("profile__distinct_id", flat=True)) == [
        "a", "c"]
    # Removing " ws-user" must not remove ws-user (a receiver that strips would).
    response = api.post(f"{URL}{cohort.pk}/members/remove/", {"distinct_ids": [" ws-user"]})
    assert (response.json()["removed"], response.json()["rejected"]) == (0, 1)


@pytest.mark.parametrize("payload", [{}, {"distinct_ids": "a"}, {"distinct_ids": [1, {"x": 1}]}])
def test_member_lists_are_validated(api, payload):
    cohort = CohortFactory(project=api.project)
    response = api.post(f"{URL}{cohort.pk}/members/", payload)
    assert response.status_code == 400
    assert "distinct_ids" in response.json()


# --- Preview ------------------------------------------------------------------------------


def test_preview_counts_and_samples_an_unsaved_definition(api):
    for i in range(5):
        ProfileFactory(project=api.project, distinct_id=f"pro-{i}", properties={"plan": "pro"})
    ProfileFactory(project=api.project, properties={"plan": "free"})
    response = api.post(f"{URL}preview/", {"definition": PRO, "sample_size": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 5
    assert [m["distinct_id"] for m in body["sample"]] == ["pro-0", "pro-1", "pro-2"]
    assert not Cohort.objects.exists()


def test_preview_errors_name_the_path(api):
    definition = {"conditions": [{"type": "property", "property": "plan", "operator": "resembles", "value": "x"}]}
    response = api.post(f"{URL}preview/", {"definition": definition})
    assert response.status_code == 400
    assert response.json()["definition"][0].startswith("definition.conditions[0].operator: must be one of equals")


@pytest.mark.parametrize("operator, value", [
    ("gt", "0000-01-01"), ("gt", "2024-02-30"), ("between", ["0000-01-01", "2024-01-01"]),
    ("lt", "9999-12-31T23:59:59-01:00"),
])
def test_preview_of_a_date_no_calendar_has_is_a_400(api, operator, value):
    definition = {"conditions": [{"type": "property", "property": "signed_up", "operator": operator, "value": value,
                                  "value_type": "date"}]}

    response = api.post(f"{URL}preview/", {"definition": definition})

    assert response.status_code == 400
    assert response.json()["definition"][0].startswith("definition.conditions[0].value: ")


def test_a_lone_surrogate_in_a_definition_is_a_400_naming_its_path(api):
    body = ('{"definition": {"conditions": [{"type": "property", "property": "plan", "operator": "equals", '
            '"value": "pro\\ud800"}]}}')

    response = api.post(f"{URL}preview/", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"definition": [
        "definition.conditions[0].value: must not contain lone surrogates (not valid Unicode text)"]}


def test_a_rule_definition_nested_thousands_deep_is_a_400(api):
    leaf = '{"conditions": [{"type": "property", "property": "plan", "operator": "is_set"}]}'
    definition = '{"conditions": [' * 3000 + leaf + "]}" * 3000

    for url, body in [(URL, '{"name": "deep", "kind": "rules", "definition": %s}' % definition),
                      (f"{URL}preview/", '{"definition": %s}' % definition)]:
        response = api.post(url, body, content_type="application/json")
        assert response.status_code == 400
        assert "nested more than" in response.json()["detail"]
    assert not Cohort.objects.filter(name="deep").exists()


def test_preview_only_counts_the_clients_project(api, other_project):
    ProfileFactory(project=other_project, properties={"plan": "pro"})
    assert api.post(f"{URL}preview/", {"definition": PRO}).json() == {"count": 0, "sample": []}
    response = api.post(f"{URL}preview/", {"definition": PRO, "project": other_project.pk})
    assert response.status_code == 400 and "project" in response.json()


def test_no_credentials(client):
    assert client.get(URL).status_code == 401
    assert client.post(f"{URL}preview/", {}, content_type="application/json").status_code == 401


# --- Input PostgreSQL cannot store or compare: 400s and 404s, not 500s ----------------------


@pytest.mark.parametrize("condition, message", [
    ({"type": "event", "event": "Pl\x00ay", "within_days": 3},
     "definition.conditions[0].event: must not contain NUL characters"),
    ({"type": "property", "property": "plan", "operator": "in", "value": ["pro", "fr\x00ee"]},
     "definition.conditions[0].value[1]: must not contain NUL characters"),
    ({"type": "property", "property": "d", "operator": "gt", "value": "0001-01-01T00:00:00+14:00"},
     "definition.conditions[0].operator: gt does not apply to string values"),  # no UTC time: not a date
])
def test_definitions_the_database_cannot_take_are_400s(api, condition, message):
    for url in (URL, f"{URL}preview/"):
        response = api.post(url, {"name": "x", "kind": "rules", "definition": {"conditions": [condition]}})
        assert response.status_code == 400
        assert response.json() == {"definition": [message]}
