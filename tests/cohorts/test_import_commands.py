"""The import_profiles, import_events and cohort_members commands (cohorts/management/)."""

from datetime import UTC, timedelta
from io import StringIO

import orjson
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cohorts.models import Cohort, CohortMember, Event, Profile
from tests.factories import CohortFactory, ProfileFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def run(name: str, *args) -> list[str]:
    out = StringIO()
    call_command(name, *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue().splitlines()


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*items) -> str:
    return "".join((item if isinstance(item, str) else orjson.dumps(item).decode()) + "\n" for item in items)


def profiles(project) -> dict[str, Profile]:
    return {p.distinct_id: p for p in Profile.objects.filter(project=project)}


@pytest.fixture
def project():
    return ProjectFactory()


# --- import_profiles -----------------------------------------------------------------------


def test_profiles_csv_imports_good_rows_and_reports_bad_ones_by_file_line(tmp_path, project):
    ProfileFactory(project=project, distinct_id="kept", email="kept@example.com", first_name="Kay",
                   properties={"plan": "free"})
    path = write(tmp_path, "people.csv", (
        "distinct_id,email,first_name,plan,score\n"
        "a,a@example.com,Ada,pro,10\n"
        ",nobody@example.com,No,free,1\n"
        "kept,,,team,\n"
        "\n"
        f"{'x' * 300},x@example.com,,,\n"
        "b,b@example.com,Bea,free,2,surplus\n"
        '"c","c@example.com","Multi\nline",free,3\n'
        ",,,,\n"
        "d,d@example.com,Dee,,\n"
    ))

    output = run("import_profiles", path, "--project", project.pk)

    assert output == [
        "line 3: distinct_id: is required",
        "line 6: distinct_id: must be at most 255 characters",
        "line 7: 6 cells, but the header names 5 columns",
        "line 10: distinct_id: is required",
        "imported 4, rejected 4",
    ]
    rows = profiles(project)
    assert sorted(rows) == ["a", "c", "d", "kept"]
    assert (rows["a"].email, rows["a"].first_name, rows["a"].properties) == (
        "a@example.com", "Ada", {"plan": "pro", "score": "10"},
    )
    # Empty cells are "not given": the stored email and name stay.
    assert (rows["kept"].email, rows["kept"].first_name, rows["kept"].properties) == (
        "kept@example.com", "Kay", {"plan": "team"},
    )
    assert rows["c"].first_name == "Multi\nline"
    assert rows["d"].properties == {}


def test_profiles_jsonl_takes_the_service_item_format_and_rejects_bad_lines(tmp_path, project):
    ProfileFactory(project=project, distinct_id="a", properties={"plan": "free", "old": True, "since": 2020})
    path = write(tmp_path, "people.jsonl", jsonl(
        {"distinct_id": "a", "set": {"plan": "pro"}, "set_once": {"since": 2024}, "unset": ["old"]},
        '{"distinct_id": "broken", ',
        "",
        {"distinct_id": "b", "colour": "red"},
        "[1, 2]",
        {"distinct_id": "c", "email": "c@example.com"},
        {"distinct_id": "a", "add": {"logins": 2}},
        {"distinct_id": "a", "add": {"plan": 1}},
    ))

    output = run("import_profiles", path, "--project", project.pk)

    assert output[0].startswith("line 2: invalid JSON: ")
    assert output[1:] == [
        "line 4: colour: unknown field (expected add, append, distinct_id, email, first_name, last_name, "
        "phone_number, remove, set, set_once, union, unset)",
        "line 5: must be an object, not an array",
        "line 8: add.plan: the profile's value is a string, not a number to add to",
        "imported 3, rejected 4",
    ]
    rows = profiles(project)
    assert rows["a"].properties == {"plan": "pro", "since": 2020, "logins": 2}
    assert rows["c"].email == "c@example.com"
    assert "b" not in rows


def test_line_numbers_hold_across_batches(tmp_path, project, monkeypatch):
    monkeypatch.setattr("cohorts.management.imports.MAX_BATCH", 3)
    lines = ["distinct_id,email"] + [f"u{i},{'bad' if i % 4 == 0 else 'ok'}@example.com" for i in range(1, 11)]
    lines[5] = ",missing@example.com"
    path = write(tmp_path, "people.csv", "\n".join(lines) + "\n")

    output = run("import_profiles", path, "--project", project.pk)

    assert output == ["line 6: distinct_id: is required", "imported 9, rejected 1"]
    assert len(profiles(project)) == 9


def test_ndjson_and_a_format_override_are_understood(tmp_path, project):
    first = write(tmp_path, "people.ndjson", jsonl({"distinct_id": "a"}))
    second = write(tmp_path, "people.txt", jsonl({"distinct_id": "b"}))

    assert run("import_profiles", first, "--project", project.pk) == ["imported 1, rejected 0"]
    assert run("import_profiles", second, "--project", project.pk, "--format", "jsonl") == ["imported 1, rejected 0"]
    assert sorted(profiles(project)) == ["a", "b"]


def test_strict_fails_the_command_when_a_row_was_rejected_but_keeps_the_good_ones(tmp_path, project):
    path = write(tmp_path, "people.jsonl", jsonl({"distinct_id": "a"}, {"distinct_id": ""}))

    with pytest.raises(CommandError, match=r"rows rejected: 1 \(--strict\)"):
        run("import_profiles", path, "--project", project.pk, "--strict")

    assert sorted(profiles(project)) == ["a"]


def test_a_missing_project_or_an_unreadable_file_fails_the_command(tmp_path, project):
    good = write(tmp_path, "people.jsonl", jsonl({"distinct_id": "a"}))

    with pytest.raises(CommandError, match="Project 999999 does not exist"):
        run("import_profiles", good, "--project", 999999)
    with pytest.raises(CommandError, match="Cannot read"):
        run("import_profiles", tmp_path / "missing.csv", "--project", project.pk)
    with pytest.raises(CommandError, match="unknown file type"):
        run("import_profiles", write(tmp_path, "people.xlsx", ""), "--project", project.pk)
    with pytest.raises(CommandError, match="no distinct_id column"):
        run("import_profiles", write(tmp_path, "people.csv", "id,email\n1,a@example.com\n"), "--project", project.pk)
    assert not Profile.objects.filter(project=project).exists()


def test_an_empty_file_imports_nothing(tmp_path, project):
    assert run("import_profiles", write(tmp_path, "empty.csv", ""), "--project", project.pk) == [
        "imported 0, rejected 0",
    ]


def test_a_byte_order_mark_and_invalid_utf8_are_handled(tmp_path, project):
    path = tmp_path / "people.csv"
    path.write_bytes(b"\xef\xbb\xbfdistinct_id,city\r\na,K\xc3\xb6ln\r\nb,K\xf6ln\r\nc,Bonn\r\n")

    output = run("import_profiles", path, "--project", project.pk)

    assert output == ["line 3: not valid UTF-8", "imported 2, rejected 1"]
    assert profiles(project)["a"].properties == {"city": "Köln"}


# --- import_events ---------------------------------------------------------------------------


def test_events_csv_takes_iso_and_unix_times_and_other_columns_as_properties(tmp_path, project):
    now = timezone.now().replace(microsecond=0)
    yesterday = (now - timedelta(days=1)).astimezone(UTC)
    path = write(tmp_path, "events.csv", (
        "distinct_id,event,time,path,amount\n"
        f"a,page_view,{yesterday.strftime('%Y-%m-%dT%H:%M:%S')},/home,\n"
        f"a,purchase,{int(now.timestamp())},,12.50\n"
        f"b,purchase,{(now + timedelta(days=1)).isoformat()},,1\n"
        "b,login,last tuesday,,\n"
        f"c,,{int(now.timestamp())},,\n"
        f"c,old,{int((now - timedelta(days=365)).timestamp())},,\n"
    ))

    output = run("import_events", path, "--project", project.pk)

    assert output == [
        "line 4: time: is more than 1 hour in the future",
        "line 5: time: 'last tuesday' is not an ISO 8601 date-time (e.g. 2024-05-01T12:00:00Z) or unix seconds",
        "line 6: event: is required",
        "line 7: time: is older than the 90-day retention window",
        "imported 2, rejected 4",
    ]
    events = list(Event.objects.filter(project=project).order_by("time"))
    assert [(e.distinct_id, e.name, e.time, e.properties) for e in events] == [
        ("a", "page_view", yesterday, {"path": "/home"}),
        ("a", "purchase", now, {"amount": "12.50"}),
    ]


def test_events_jsonl(tmp_path, project):
    when = timezone.now() - timedelta(hours=2)
    path = write(tmp_path, "events.jsonl", jsonl(
        {"distinct_id": "a", "event": "signup", "time": when.isoformat(), "properties": {"plan": "pro"}},
        {"distinct_id": "a", "event": "signup"},
        "not json",
    ))

    output = run("import_events", path, "--project", project.pk)

    assert output[:1] == ["line 2: time: is required"]
    assert output[1].startswith("line 3: invalid JSON")
    assert output[2] == "imported 1, rejected 2"
    events = Event.objects.filter(project=project)
    assert list(events.values_list("name", "properties")) == [("signup", {"plan": "pro"})]


# --- cohort_members --------------------------------------------------------------------------


@pytest.fixture
def cohort():
    cohort = CohortFactory()
    for distinct_id in ["a", "b", "c", "d"]:
        ProfileFactory(project=cohort.project, distinct_id=distinct_id)
    return cohort


def members(cohort) -> list[str]:
    return sorted(CohortMember.objects.filter(cohort=cohort).values_list("profile__distinct_id", flat=True))


def test_cohort_members_add_and_remove_from_a_plain_list(tmp_path, cohort):
    ids = write(tmp_path, "ids.txt", "a\n b \n\nghost-1\nc\r\nghost-2\n")

    # " b " is refused, not stripped: a receiver that strips would then hold b for it.
    assert run("cohort_members", cohort.pk, "--add", ids) == [
        "line 2: distinct_id: must not begin or end with whitespace (receivers would strip it)",
        f"added 2, removed 0; cohort {cohort.pk} has 2 members",
        "rejected 1 distinct ids (not applied)",
        "unknown distinct ids: 2 (ghost-1, ghost-2)",
    ]
    assert members(cohort) == ["a", "c"]

    assert run("cohort_members", cohort.pk, "--remove", write(tmp_path, "out.txt", "a\nd\n")) == [
        f"added 0, removed 1; cohort {cohort.pk} has 1 members",
    ]
    assert members(cohort) == ["c"]


def test_cohort_members_refuses_ids_receivers_would_alter_by_line(tmp_path, cohort):
    path = tmp_path / "ids.csv"
    path.write_text('email,distinct_id\nx@example.com,a\n,"b\tc"\n,"multi\nline"\n, c\n,' + "x" * 256 + "\n,b\n",
                    encoding="utf-8")

    assert run("cohort_members", cohort.pk, "--add", path) == [
        "line 3: distinct_id: must not contain control characters (U+0009 at character 2)",
        "line 4: distinct_id: must not contain control characters (U+000A at character 6)",
        "line 6: distinct_id: must not begin or end with whitespace (receivers would strip it)",
        "line 7: distinct_id: must be at most 255 characters",
        f"added 2, removed 0; cohort {cohort.pk} has 2 members",
        "rejected 4 distinct ids (not applied)",
    ]
    assert members(cohort) == ["a", "b"]


def test_cohort_members_replace_from_a_csv_with_a_distinct_id_column(tmp_path, cohort, monkeypatch):
    monkeypatch.setattr("cohorts.services.UNKNOWN_SAMPLE_SIZE", 2)
    run("cohort_members", cohort.pk, "--add", write(tmp_path, "ids.txt", "a\nb\n"))
    path = write(tmp_path, "ids.csv", "email,distinct_id\nx@example.com,b\ny@example.com,d\n,g1\n,g2\n,g3\n")

    assert run("cohort_members", cohort.pk, "--replace", path) == [
        f"added 1, removed 1; cohort {cohort.pk} has 2 members",
        "unknown distinct ids: 3 (g1, g2, …)",
    ]
    assert members(cohort) == ["b", "d"]


def test_cohort_members_refuses_rule_cohorts_missing_cohorts_and_files(tmp_path, cohort):
    ids = write(tmp_path, "ids.txt", "a\n")
    rules = CohortFactory(kind=Cohort.Kind.RULES, definition={})

    with pytest.raises(CommandError, match="only static cohorts"):
        run("cohort_members", rules.pk, "--add", ids)
    with pytest.raises(CommandError, match="does not exist"):
        run("cohort_members", 999999, "--add", ids)
    with pytest.raises(CommandError, match="Cannot read"):
        run("cohort_members", cohort.pk, "--add", tmp_path / "missing.txt")
    with pytest.raises(CommandError, match="no distinct_id column"):
        run("cohort_members", cohort.pk, "--add", write(tmp_path, "ids.csv", "id\na\n"))
    with pytest.raises(CommandError):
        run("cohort_members", cohort.pk, ids)  # one of --add, --remove, --replace is required
    assert members(cohort) == []
