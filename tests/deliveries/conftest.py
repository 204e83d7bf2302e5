"""Fixtures of the sync pages' tests."""

from tests.support.pages import member, member_client, project  # noqa: F401  (the status pages' fixtures)
