"""Wire formats: one page of members in the connection's format (docs/contract.md).

- `mixpanel` (default): `{"action", "parameters": {..., "page_info", "members"}}`.
- `amplitude`: `{"cohort_name", "cohort_id", "in_cohort", "computed_time", "message_id", "users"}`.
- `template`: the user's sandboxed template over Amplitude's `input` object plus our
  session and page fields (integrations/templating.py).
"""

import uuid
from dataclasses import dataclass
from typing import NamedTuple

import orjson

from cohorts.models import IDENTITY_FIELDS
from outbound.ids import request_id

from .templating import compile_template, render_template


class MemberRow(NamedTuple):
    """One member as read from the database, before it is shaped for a format.

    A tuple, in the column order of the engine's page query: a million of them are made
    per full run of a 1M cohort, and a tuple costs a fraction of a dataclass.
    """

    distinct_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    phone_number: str | None
    properties_json: str | None = None


@dataclass(frozen=True)
class PageContext:
    """Everything about a page except its members."""

    action: str  # members | add_members | remove_members
    project_id: str
    cohort_id: str
    cohort_name: str
    cohort_description: str
    session_id: str
    page_id: str
    page_count: int  # 1-based
    total_pages: int
    computed_time: int  # unix seconds: when the run fixed its picture

    @property
    def in_cohort(self) -> bool:
        return self.action != "remove_members"


def page_id(session_id: uuid.UUID, page_number: int) -> str:
    """Stable across retries of a page, unique across pages and runs (the `webhook-id`)."""
    return request_id(session_id, str(page_number))


def selected_properties(row: MemberRow, properties: tuple[str, ...]) -> dict:
    """The sync's exported properties (≤ 50) of one member; identity names read their columns."""
    if not properties:
        return {}
    custom = orjson.loads(row.properties_json) if row.properties_json else None
    if type(custom) is not dict:
        custom = {}
    selected = {}
    for name in properties:
        if name in IDENTITY_FIELDS:
            value = getattr(row, name)
            if value:
                selected[name] = value
        elif name in custom:
            selected[name] = custom[name]
    return selected


def mixpanel_member(row: MemberRow, properties: tuple[str, ...]) -> dict:
    return mixpanel_members([row], properties)[0]


def mixpanel_members(rows: list[MemberRow], properties: tuple[str, ...]) -> list[dict]:
    """The members of a page; what to look up is decided once a page, not once a member
    (this loop runs a million times for a 1M cohort; figures in docs/benchmarks.md)."""
    # An exported identity name adds nothing: the member already has that field when it is set.
    custom_names = tuple(name for name in properties if name not in IDENTITY_FIELDS)
    loads = orjson.loads
    members = []
    for distinct_id, email, first_name, last_name, phone_number, properties_json in rows:
        member = {"mixpanel_distinct_id": distinct_id}
        # Identity fields go out only when the profile has them (docs/contract.md).
        if email:
            member["email"] = email
        if first_name:
            member["first_name"] = first_name
        if last_name:
            member["last_name"] = last_name
        if phone_number:
            member["phone_number"] = phone_number
        if custom_names and properties_json:
            custom = loads(properties_json)
            if type(custom) is dict:
                for name in custom_names:
                    if name in custom and name not in member:
                        member[name] = custom[name]
        members.append(member)
    return members


def mixpanel_body(*, action: str, parameters: dict, total_pages: int, page_count: int, members: list[dict]) -> bytes:
    return orjson.dumps(
        {
            "action": action,
            "parameters": {
                **parameters,
                "page_info": {"total_pages": total_pages, "page_count": page_count},
                "members": members,
            },
        }
    )


def mixpanel_page(context: PageContext, rows: list[MemberRow], properties: tuple[str, ...]) -> bytes:
    return mixpanel_body(
        action=context.action,
        parameters={
            "mixpanel_project_id": context.project_id,
            "mixpanel_cohort_id": context.cohort_id,
            "mixpanel_cohort_name": context.cohort_name,
            "mixpanel_cohort_description": context.cohort_description,
            "mixpanel_session_id": context.session_id,
        },
        total_pages=context.total_pages,
        page_count=context.page_count,
        members=mixpanel_members(rows, properties),
    )


def amplitude_input(context: PageContext, rows: list[MemberRow], properties: tuple[str, ...]) -> dict:
    return {
        "cohort_name": context.cohort_name,
        "cohort_id": context.cohort_id,
        "in_cohort": context.in_cohort,
        "computed_time": str(context.computed_time),
        "message_id": context.page_id,
        "users": [{"user_id": row.distinct_id, "user_properties": selected_properties(row, properties)}
                  for row in rows],
    }


def amplitude_page(context: PageContext, rows: list[MemberRow], properties: tuple[str, ...]) -> bytes:
    return orjson.dumps(amplitude_input(context, rows, properties))


def template_input(context: PageContext, rows: list[MemberRow], properties: tuple[str, ...]) -> dict:
    """Amplitude's `input` object, plus our session and page fields."""
    return {
        **amplitude_input(context, rows, properties),
        "action": context.action,
        "project_id": context.project_id,
        "cohort_description": context.cohort_description,
        "session_id": context.session_id,
        "page_count": context.page_count,
        "total_pages": context.total_pages,
    }


def template_page(context: PageContext, rows: list[MemberRow], properties: tuple[str, ...], template) -> bytes:
    return render_template(template, template_input(context, rows, properties)).encode()


def page_renderer(connection):
    """The body builder of a connection's format: (context, rows, properties) -> bytes."""
    if connection.format == "amplitude":
        return amplitude_page
    if connection.format == "template":
        template = compile_template(connection.body_template)
        return lambda context, rows, properties: template_page(context, rows, properties, template)
    return mixpanel_page


SAMPLE_ROWS = [
    MemberRow("user-1", "ada@example.com", "Ada", "Lovelace", "+1-555-0100", '{"plan": "pro", "score": 42}'),
    MemberRow("user-2", "", "Alan", "", "", '{"plan": "free"}'),
]


def template_samples(*, page_size: int) -> list[tuple[str, dict]]:
    """The pages a payload template must render at save (integrations.templating.validate_template):
    the documentation's sample, an empty page, one member, and a full page of `page_size`."""
    properties = ("plan", "score", "email")
    full = [SAMPLE_ROWS[i % 2]._replace(distinct_id=f"user-{i + 1}") for i in range(max(page_size or 1, 1))]
    return [
        ("the sample page", template_input(sample_context(), SAMPLE_ROWS, properties)),
        ("an empty page", template_input(sample_context(action="remove_members"), [], properties)),
        ("a page of one member", template_input(sample_context(), SAMPLE_ROWS[:1], properties)),
        (f"a full page ({len(full)} members)", template_input(sample_context(action="members"), full, properties)),
    ]


def sample_context(*, action: str = "add_members") -> PageContext:
    """A page for validating templates on save and for documentation examples."""
    session_id = uuid.UUID("6f1c1f0e-7d4f-4e59-9a55-3d6c0b0c2d8e")
    return PageContext(
        action=action, project_id="1", cohort_id="12", cohort_name="Pro users",
        cohort_description="People on the pro plan", session_id=str(session_id),
        page_id=page_id(session_id, 1), page_count=1, total_pages=2, computed_time=1767225600,
    )
