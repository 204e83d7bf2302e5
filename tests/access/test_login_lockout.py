"""Both login pages lock a username out from one address after repeated failures (django-axes,
configured in config/settings.py)."""

import pytest

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


@pytest.fixture
def user():
    user = UserFactory(username="ada", is_staff=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def log_in(client, path, password, address="203.0.113.5"):
    return client.post(path, {"username": "ada", "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_repeated_failures_lock_the_user_out_from_that_address(client, settings, user, path):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        assert log_in(client, path, "wrong").status_code == 200  # the form again, with its error
    assert log_in(client, path, "wrong").status_code == 429  # the third failure locks

    locked = log_in(client, path, PASSWORD)

    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address is not locked out: one attacker cannot lock everybody out.
    assert log_in(client, path, PASSWORD, address="198.51.100.7").status_code == 302


def test_a_success_before_the_limit_resets_the_count(client, settings, user):
    settings.AXES_FAILURE_LIMIT = 3
    log_in(client, "/login/", "wrong")
    log_in(client, "/login/", "wrong")
    assert log_in(client, "/login/", PASSWORD).status_code == 302
    client.logout()

    log_in(client, "/login/", "wrong")
    log_in(client, "/login/", "wrong")
    assert log_in(client, "/login/", PASSWORD).status_code == 302
