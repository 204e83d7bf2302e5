"""Connection input rules (integrations/validation.py) as enforced by Connection.clean(),
reached through the one service every interface uses (docs/contract.md, "Connections")."""

import pytest
from django.core.exceptions import ValidationError

from integrations.models import Connection
from integrations.services import connection_create, connection_update
from integrations.validation import MAX_CUSTOM_HEADERS
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://hooks.example.com/cohorts"


@pytest.fixture
def project():
    return ProjectFactory()


def create(project, **fields):
    values = {"name": "Receiver", "url": PUBLIC_URL, **fields}
    return connection_create(project=project, **values)


def refusal(project, **fields) -> dict[str, list[str]]:
    """The message_dict of the ValidationError that creating this connection raises."""
    with pytest.raises(ValidationError) as caught:
        create(project, **fields)
    assert not Connection.objects.filter(project=project).exists()
    return caught.value.message_dict


# --- Custom headers ------------------------------------------------------------------


def test_five_custom_headers_are_accepted_and_stored(project):
    headers = {f"X-Custom-{i}": f"value {i}" for i in range(MAX_CUSTOM_HEADERS)}

    connection = create(project, headers=headers)

    connection.refresh_from_db()
    assert connection.headers == headers


def test_more_than_five_custom_headers_are_refused(project):
    headers = {f"X-Custom-{i}": "v" for i in range(MAX_CUSTOM_HEADERS + 1)}

    errors = refusal(project, headers=headers)

    assert list(errors) == ["headers"]
    assert errors["headers"] == ["At most 5 custom headers are allowed (got 6)."]


@pytest.mark.parametrize("name", ["X Team", "X-Team:", "X:Team", "", "X-Tëam", "X-Team\r\n"])
def test_invalid_header_names_are_refused(project, name):
    errors = refusal(project, headers={name: "growth"})

    assert list(errors) == ["headers"]
    assert errors["headers"] == [f"Header name {name!r} is not a valid HTTP header name."]


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"])
def test_header_values_with_line_breaks_or_nul_are_refused(project, value):
    errors = refusal(project, headers={"X-Team": value})

    assert errors["headers"] == ["Header 'X-Team' contains a line break or NUL character."]


def test_header_values_must_be_text(project):
    errors = refusal(project, headers={"X-Count": 5})

    assert errors["headers"] == ["Header 'X-Count' must have a text value."]


def test_overlong_header_value_is_refused(project):
    errors = refusal(project, headers={"X-Team": "a" * 2049})

    assert errors["headers"] == ["Header 'X-Team' is longer than 2048 characters."]


@pytest.mark.parametrize(
    "name",
    ["Content-Type", "content-type", "CONTENT-TYPE", "User-Agent", "user-agent", "Authorization", "aUtHoRiZaTiOn",
     "webhook-id", "Host"],
)
def test_headers_cohortsync_sets_cannot_be_overridden(project, name):
    errors = refusal(project, headers={name: "mine"})

    assert errors["headers"] == [f"Header {name!r} is set by Cohortsync and cannot be overridden."]


@pytest.mark.parametrize("name", ["x-api-key", "X-API-Key"])
def test_x_api_key_header_is_refused_when_an_api_key_is_set(project, name):
    errors = refusal(project, api_key="k-123", headers={name: "other"})

    assert errors["headers"] == [f"Header {name!r} is set by Cohortsync and cannot be overridden."]


def test_x_api_key_header_is_allowed_without_an_api_key(project):
    connection = create(project, headers={"X-API-Key": "sent-as-a-plain-header"})

    connection.refresh_from_db()
    assert connection.headers == {"X-API-Key": "sent-as-a-plain-header"}
    assert connection.api_key == ""


def test_setting_an_api_key_later_refuses_the_existing_x_api_key_header(project):
    connection = create(project, headers={"x-api-key": "plain"})

    with pytest.raises(ValidationError) as caught:
        connection_update(connection=connection, api_key="secret")

    assert caught.value.message_dict["headers"] == ["Header 'x-api-key' is set by Cohortsync and cannot be overridden."]
    connection.refresh_from_db()
    assert connection.api_key == ""


def test_duplicate_header_names_differing_in_case_are_refused(project):
    errors = refusal(project, headers={"X-Team": "a", "x-team": "b"})

    assert errors["headers"] == ["Header 'x-team' is given twice."]


def test_every_header_problem_is_reported_at_once(project):
    headers = {"Bad Name": "x", "User-Agent": "y", "X-Ok": "line\nbreak"}

    errors = refusal(project, headers=headers)

    assert errors["headers"] == [
        "Header name 'Bad Name' is not a valid HTTP header name.",
        "Header 'User-Agent' is set by Cohortsync and cannot be overridden.",
        "Header 'X-Ok' contains a line break or NUL character.",
    ]


@pytest.mark.parametrize("headers", [["X-Team", "growth"], "X-Team: growth", 42])
def test_headers_must_be_an_object(project, headers):
    errors = refusal(project, headers=headers)

    assert errors["headers"] == ["Headers must be an object of name: value pairs."]


@pytest.mark.parametrize("value", [" growth", "\tgrowth"])
def test_header_values_that_requests_cannot_send_are_refused(project, value):
    errors = refusal(project, headers={"X-Team": value})

    assert list(errors) == ["headers"]


def test_header_name_with_a_trailing_newline_is_refused(project):
    errors = refusal(project, headers={"X-Team\n": "growth"})

    assert errors["headers"] == ["Header name 'X-Team\\n' is not a valid HTTP header name."]


def test_header_values_outside_latin1_are_refused(project):
    errors = refusal(project, headers={"X-Team": "成長"})

    assert list(errors) == ["headers"]


# --- URL: scheme, host, credentials, port --------------------------------------------


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", "javascript:alert(1)", "file:///etc/passwd",
                                 "hooks.example.com/x"])
def test_only_http_and_https_schemes_are_accepted(project, url):
    errors = refusal(project, url=url)

    assert "URL must start with https:// or http://." in errors["url"]


def test_url_without_a_host_is_refused(project):
    errors = refusal(project, url="https:///only-a-path")

    assert "URL has no host." in errors["url"]


@pytest.mark.parametrize("url", ["https://user:secret@hooks.example.com/x", "https://user@hooks.example.com/x"])
def test_credentials_in_the_url_are_refused(project, url):
    errors = refusal(project, url=url)

    assert errors["url"] == ["Put credentials in the Basic Auth fields, not in the URL."]


def test_out_of_range_port_is_refused(project):
    errors = refusal(project, url="https://hooks.example.com:99999/x")

    assert errors["url"] == ["URL has an invalid port."]


def test_non_numeric_port_is_refused(project):
    errors = refusal(project, url="https://hooks.example.com:http/x")

    assert "URL has an invalid port." in errors["url"]


def test_password_without_username_is_refused(project):
    errors = refusal(project, auth_password="secret")

    assert errors == {"auth_username": ["A Basic Auth password needs a username."]}


# --- URL: private, loopback and reserved destinations (SSRF) ----------------------------


@pytest.fixture
def public_only(settings):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = False


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost/hook", "Loopback destinations are not allowed."),
        ("http://LocalHost:8000/hook", "Loopback destinations are not allowed."),
        ("http://api.localhost/hook", "Loopback destinations are not allowed."),
        ("http://127.0.0.1:8000/hook", "Destination address 127.0.0.1 is private, loopback or reserved."),
        ("http://10.1.2.3/hook", "Destination address 10.1.2.3 is private, loopback or reserved."),
        ("http://172.16.0.9/hook", "Destination address 172.16.0.9 is private, loopback or reserved."),
        ("http://192.168.1.20/hook", "Destination address 192.168.1.20 is private, loopback or reserved."),
        ("http://169.254.169.254/latest/meta-data",
         "Destination address 169.254.169.254 is private, loopback or reserved."),
        ("http://100.64.0.1/hook", "Destination address 100.64.0.1 is private, loopback or reserved."),
        ("http://0.0.0.0/hook", "Destination address 0.0.0.0 is private, loopback or reserved."),
        ("http://[::1]/hook", "Destination address ::1 is private, loopback or reserved."),
        ("http://[fd00::1]/hook", "Destination address fd00::1 is private, loopback or reserved."),
        ("http://[::ffff:127.0.0.1]/hook", "Destination address ::ffff:7f00:1 is private, loopback or reserved."),
        ("http://[::ffff:10.0.0.1]/hook", "Destination address ::ffff:a00:1 is private, loopback or reserved."),
    ],
)
def test_private_destinations_are_refused_on_the_url_field(project, public_only, url, message):
    errors = refusal(project, url=url)

    assert list(errors) == ["url"]
    assert errors["url"] == [message]


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/cohorts", "https://8.8.8.8/hook", "https://[2606:4700:4700::1111]/hook",
     "http://receiver.internal-looking.example.org:8443/x", "https://localhost.example.com/hook"],
)
def test_public_destinations_are_accepted_without_resolving_names(project, public_only, url):
    connection = create(project, url=url)

    assert Connection.objects.get(pk=connection.pk).url == url


def test_private_destinations_are_accepted_when_allowed(project, settings):
    settings.COHORTSYNC_ALLOW_PRIVATE_URLS = True

    connection = create(project, url="http://127.0.0.1:8000/receiver/demo/")

    assert connection.pk is not None


def test_updating_to_a_private_url_is_refused_and_keeps_the_old_one(project, public_only):
    connection = create(project)

    with pytest.raises(ValidationError) as caught:
        connection_update(connection=connection, url="http://10.0.0.5/hook")

    assert caught.value.message_dict == {"url": ["Destination address 10.0.0.5 is private, loopback or reserved."]}
    assert Connection.objects.get(pk=connection.pk).url == PUBLIC_URL


# --- https only --------------------------------------------------------------------------


def test_require_https_refuses_plain_http(project, settings):
    settings.COHORTSYNC_REQUIRE_HTTPS = True

    errors = refusal(project, url="http://hooks.example.com/cohorts")

    assert errors == {"url": ["Only https:// URLs are allowed on this installation."]}


def test_require_https_accepts_https(project, settings):
    settings.COHORTSYNC_REQUIRE_HTTPS = True

    assert create(project, url="https://hooks.example.com/cohorts").pk is not None


def test_plain_http_is_accepted_when_https_is_not_required(project, settings):
    settings.COHORTSYNC_REQUIRE_HTTPS = False

    assert create(project, url="http://hooks.example.com/cohorts").pk is not None
