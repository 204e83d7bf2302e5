"""The stable per-request id: one scheme for sync pages, message batches and alert firings."""

import uuid


def request_id(scope: uuid.UUID, key: str) -> str:
    """The `webhook-id` of one request: the same for each retry of it, so a receiver can
    drop a duplicate, and distinct across a scope (a run's session id, or a namespace).

    A UUIDv5 of (scope, key): sync pages use their number as key, message batches
    `batch-<number>`, alert firings `<firing>:<fired at>:<connection>` (docs/design.md).
    """
    return str(uuid.uuid5(scope, key))
