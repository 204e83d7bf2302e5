"""Changes to connections; every interface creates them through here so validation holds."""

from datetime import timedelta

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cohorts.models import Project
from outbound.secrets import url_origin

from .fields import EncryptedHeaders, Token, rotate_token, stored_value
from .models import MAX_PAGE_SIZE, Connection


def connection_create(
    *,
    project: Project,
    name: str,
    url: str,
    auth_username: str = "",
    auth_password: str = "",
    api_key: str = "",
    headers: dict[str, str | None] | None = None,
    format: str = Connection.Format.MIXPANEL,
    body_template: str = "",
    content_type: str = "application/json",
    page_size: int = MAX_PAGE_SIZE,
    max_requests_per_second: float | None = None,
    max_concurrent_runs: int | None = None,
) -> Connection:
    connection = Connection(
        project=project,
        name=name,
        url=url,
        auth_username=auth_username,
        auth_password=auth_password,
        api_key=api_key,
        headers=_merged_headers(stored={}, given=headers or {}),
        format=format,
        body_template=body_template,
        content_type=content_type,
        page_size=page_size,
        max_requests_per_second=max_requests_per_second,
        max_concurrent_runs=max_concurrent_runs,
    )
    connection.full_clean()
    connection.save()
    return connection


def connection_update(*, connection: Connection, **fields) -> Connection:
    """Change the given fields and save (the rules: connection_apply_changes)."""
    connection_apply_changes(connection=connection, **fields)
    connection.save()
    return connection


def connection_apply_changes(*, connection: Connection, **fields) -> Connection:
    """Set and validate the given fields, unsaved (the admin's form saves it). Secrets (auth_password,
    api_key) and headers are replaced only when given.

    A header given as None keeps its stored value. Moving the connection to another origin
    (scheme, host or port) drops every stored secret the same call does not give again: else
    whoever may edit the URL could point it at their own host and have the secrets sent there.
    What was dropped is listed in `connection.dropped_secrets`.
    """
    stored_headers = connection.headers
    moved = "url" in fields and url_origin(fields["url"]) != url_origin(connection.url)
    dropped = _drop_secrets(connection, given=fields) if moved else []
    if "headers" in fields:
        given = fields["headers"]
        if moved and isinstance(given, dict):  # "keep the stored value" cannot outlive a move either
            dropped += [f"headers.{name}" for name, value in given.items()
                        if value is None and stored_headers.get(name)]
            given = {name: "" if value is None else value for name, value in given.items()}
        fields["headers"] = _merged_headers(stored=stored_headers, given=given)
    for field, value in fields.items():
        setattr(connection, field, value)
    connection.full_clean()
    connection.dropped_secrets = tuple(dropped)
    return connection


def _drop_secrets(connection: Connection, *, given: dict) -> list[str]:
    """Clear the stored secrets `given` does not set again; returns the names of those that were set."""
    dropped = []
    for field in ("auth_password", "api_key"):
        if field not in given and stored_value(connection, field):
            setattr(connection, field, "")
            dropped.append(field)
    if stored_value(connection, "signing_secret") or stored_value(connection, "previous_signing_secret"):
        connection.signing_secret = connection.previous_signing_secret = ""
        connection.previous_signing_secret_expires_at = None
        dropped.append("signing_secret")
    if "headers" not in given:
        dropped += [f"headers.{name}" for name, has_value in connection.header_names.items() if has_value]
        connection.headers = dict.fromkeys(connection.header_names, "")
    return dropped


def _merged_headers(*, stored: dict[str, str], given: dict[str, str | None]) -> dict[str, str]:
    """Given headers, where a None value keeps the stored value of that name (values are write-only,
    so a client that read only the names can still keep them); a None with nothing stored is an error."""
    if not isinstance(given, dict):
        return given  # the model's validation names the problem
    unknown = [name for name, value in given.items() if value is None and not stored.get(name)]
    if unknown:
        raise ValidationError({"headers": [f"Header {name!r} has no stored value to keep: give its value."
                                           for name in unknown]})
    return {name: stored[name] if value is None else value for name, value in given.items()}


def connection_rotate_signing_secret(*, connection: Connection, overlap_hours: float = 24) -> str:
    """Generate a new signing secret and return it (shown once).

    The old secret keeps signing beside the new one for `overlap_hours`, so receivers can
    switch without dropping a request; with no old secret this just turns signing on.
    """
    from outbound.signing import signing_secret_generate  # signing is the delivery side's

    new_secret = signing_secret_generate()
    if connection.signing_secret and overlap_hours > 0:
        connection.previous_signing_secret = connection.signing_secret
        connection.previous_signing_secret_expires_at = timezone.now() + timedelta(hours=overlap_hours)
    else:
        connection.previous_signing_secret = ""
        connection.previous_signing_secret_expires_at = None
    connection.signing_secret = new_secret
    connection.save(update_fields=["signing_secret", "previous_signing_secret", "previous_signing_secret_expires_at",
                                   "updated_at"])
    return new_secret


def connection_disable_signing(*, connection: Connection) -> None:
    connection.signing_secret = connection.previous_signing_secret = ""
    connection.previous_signing_secret_expires_at = None
    connection.save(update_fields=["signing_secret", "previous_signing_secret", "previous_signing_secret_expires_at",
                                   "updated_at"])


ENCRYPTED_FIELDS = ("auth_password", "api_key", "signing_secret", "previous_signing_secret", "headers")


@transaction.atomic
def connection_secrets_rotate() -> int:
    """Re-encrypt every stored connection secret with the first key of COHORTSYNC_ENCRYPTION_KEYS,
    so older keys can then be dropped; returns how many connections hold secrets.

    All or nothing: if any secret decrypts with no configured key, nothing changes and the
    ValidationError names each such connection and field.
    """
    rotated, problems = 0, []
    rows = Connection.objects.order_by("pk").values_list("pk", "name", *ENCRYPTED_FIELDS)
    for pk, name, *stored in rows.iterator(chunk_size=500):
        changes = {}
        for field, value in zip(ENCRYPTED_FIELDS, stored):
            try:
                if isinstance(value, Token):
                    changes[field] = Token(rotate_token(value))
                elif isinstance(value, EncryptedHeaders) and any(value.values()):
                    changes[field] = EncryptedHeaders(
                        {header: rotate_token(token) if token else "" for header, token in value.items()})
            except InvalidToken:
                problems.append(f"Connection {pk} (“{name}”): its {field} cannot be decrypted with any key in "
                                "COHORTSYNC_ENCRYPTION_KEYS.")
        if changes:
            Connection.objects.filter(pk=pk).update(**changes)
            rotated += 1
    if problems:
        raise ValidationError(problems)  # rolls the whole rotation back
    return rotated
