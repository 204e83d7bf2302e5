"""Fixtures of the cohort page' tests."""

from tests.support.pages import member, member_client, project  # noqa: F401  (the status pages' fixtures)
