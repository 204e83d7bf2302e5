"""Changes to connections; every interface creates them through here so validation holds."""

from datetime import timedelta

from django.utils import timezone

from cohorts.models import Project

from .models import MAX_PAGE_SIZE, Connection


def connection_create(
    *,
    project: Project,
    name: str,
    url: str,
    auth_username: str = "",
    auth_password: str = "",
    api_key: str = "",
    headers: dict[str, str] | None = None,
    format: str = Connection.Format.MIXPANEL,
    body_template: str = "",
    content_type: str = "application/json",
    page_size: int = MAX_PAGE_SIZE,
) -> Connection:
    connection = Connection(
        project=project,
        name=name,
        url=url,
        auth_username=auth_username,
        auth_password=auth_password,
        api_key=api_key,
        headers=headers or {},
        format=format,
        body_template=body_template,
        content_type=content_type,
        page_size=page_size,
    )
    connection.full_clean()
    connection.save()
    return connection


def connection_update(*, connection: Connection, **fields) -> Connection:
    for field, value in fields.items():
        setattr(connection, field, value)
    connection.full_clean()
    connection.save()
    return connection


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
