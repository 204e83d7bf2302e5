"""Changes to connections; every interface creates them through here so validation holds."""

from cohorts.models import Project

from .models import Connection


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
