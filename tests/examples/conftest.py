"""Fixtures the examples' tests share with the suites of what they exercise."""

# The SDK example runs against the same project and keys as tests/sdk_ingest.
from tests.sdk_ingest.conftest import ingest_project, mixpanel_secret, mixpanel_token, write_key  # noqa: F401
