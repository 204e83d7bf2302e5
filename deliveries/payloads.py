"""Wire formats. `mixpanel` is CONTRACT.md's default body, byte for byte in field names."""

import uuid
from dataclasses import dataclass

import orjson

IDENTITY_FIELDS = ("email", "first_name", "last_name", "phone_number")


@dataclass(frozen=True)
class MemberRow:
    """One member as read from the database, before it is shaped for a format."""

    distinct_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    phone_number: str | None
    properties_json: str | None


def page_id(session_id: uuid.UUID, page_number: int) -> str:
    """Stable across retries of a page, unique across pages and runs (the `webhook-id`)."""
    return str(uuid.uuid5(session_id, str(page_number)))


def mixpanel_member(row: MemberRow, properties: tuple[str, ...]) -> dict:
    member = {"mixpanel_distinct_id": row.distinct_id}
    # Identity fields go out only when the profile has them (CONTRACT.md).
    for field in IDENTITY_FIELDS:
        value = getattr(row, field)
        if value:
            member[field] = value
    if properties and row.properties_json:
        custom = orjson.loads(row.properties_json)
        if isinstance(custom, dict):
            for name in properties:
                if name in custom and name not in member:
                    member[name] = custom[name]
    return member


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
