"""User-message limits as data (docs/contract.md, "Legacy user messages")."""

BATCH_SIZE = 50  # users per POST (docs/contract.md, "Legacy user messages")
TEST_SEND_PROFILES = 5  # random profiles in a test send (docs/contract.md, "Legacy user messages")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
USERS_FIELD = "users"
# A run goes on past a failed batch (its users are given back for the next attempt), but a
# receiver that refuses this many batches in a row is down: stop rather than try them all.
MAX_CONSECUTIVE_FAILED_BATCHES = 3
MAX_INTERVAL = 366
MAX_LIMIT_COUNT = 1000
MAX_LIMIT_DAYS = 366
MAX_PROPERTIES = 200
