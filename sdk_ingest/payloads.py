"""Request bodies as the SDKs send them: limits checked before and after gzip, JSON, and
Mixpanel's `data=` form field (plain or base64 JSON)."""

import base64
import binascii
import zlib
from urllib.parse import parse_qs

import orjson


class PayloadInvalid(Exception):
    """The body as a whole cannot be read; `status` is 400 or 413 (too large)."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request"):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


def request_body(request, *, limit: int) -> bytes:
    """The request's body, un-gzipped, refused when it (or its uncompressed form) passes `limit` bytes."""
    too_large = PayloadInvalid(f"The request body is larger than the {limit:,} bytes allowed: send smaller batches.",
                               status=413, code="payload_too_large")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large  # refused before reading it
    body = _chunked_body(request, limit=limit, too_large=too_large) if not declared else request.body
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        body = _gunzipped(body, limit=limit, too_large=too_large)
    elif encoding not in ("", "identity"):
        raise PayloadInvalid(f"Unsupported Content-Encoding {encoding[:40]!r}: send gzip or no encoding.")
    if len(body) > limit:
        raise too_large
    return body


def _chunked_body(request, *, limit: int, too_large: PayloadInvalid) -> bytes:
    """A body sent without Content-Length (`Transfer-Encoding: chunked`, e.g. from a client that
    gzips as it sends, as OkHttp's usual gzip interceptor does), which Django reads as empty:
    read up to the limit from a server that ends the input itself (gunicorn's
    `wsgi.input_terminated`; the development server does not)."""
    meta = request.META
    if "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower() or not meta.get("wsgi.input_terminated"):
        return request.body
    parts, size = [], 0
    while chunk := meta["wsgi.input"].read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def _gunzipped(body: bytes, *, limit: int, too_large: PayloadInvalid) -> bytes:
    """Every member of a gzip body (RFC 1952: a gzip stream is a series of members, as concatenated
    .gz files are), bounded: a small bomb must not expand into memory past the limit. A truncated
    member or bytes after the last one refuse the body rather than drop what they held."""
    parts, size, rest = [], 0, body
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error:
            raise PayloadInvalid("The body is not valid gzip (Content-Encoding: gzip).") from None
        size += len(part)
        if inflater.unconsumed_tail or size > limit:
            raise too_large
        if not inflater.eof:
            raise PayloadInvalid("The gzip body is truncated (Content-Encoding: gzip).")
        parts.append(part)
        rest = inflater.unused_data.lstrip(b"\x00")  # zero padding after a member, as gzip allows
    return b"".join(parts)


def json_value(raw: bytes | str):
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise PayloadInvalid(f"The body is not valid JSON: {error}", code="invalid_json") from None


def ndjson_values(raw: bytes) -> list:
    return [json_value(line) for line in raw.splitlines() if line.strip()]


def form_fields(raw: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, the last value of each field."""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise PayloadInvalid("The form body is not UTF-8.") from None
    return {name: values[-1] for name, values in parse_qs(text, keep_blank_values=True).items()}


def mixpanel_data_field(value: str):
    """Mixpanel's `data=`: JSON, or base64 of JSON (what its browser and older server libraries send)."""
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        return json_value(stripped)
    try:
        decoded = base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=b"-_" if "-" in stripped
                                   or "_" in stripped else None, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadInvalid("`data` is neither JSON nor base64-encoded JSON.") from None
    return json_value(decoded)
