"""Signed requests: the Standard Webhooks headers, computed by the `standardwebhooks` package.

`webhook-id` is the page id (stable across retries), `webhook-timestamp` the time of each
try, and `webhook-signature` one `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per
active secret, space-separated, so receivers keep verifying during a rotation's overlap.
"""

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def signing_secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_headers(*, signing_secrets: tuple[str, ...], page_id: str, sent_at: datetime, body: bytes) -> dict:
    if not signing_secrets:
        return {}
    text = body.decode("utf-8", errors="surrogateescape")
    signatures = [Webhook(secret).sign(page_id, sent_at, text) for secret in signing_secrets]
    return {"webhook-timestamp": str(int(sent_at.timestamp())), "webhook-signature": " ".join(signatures)}
