"""Rules for connection input, shared by the model, the admin, the API and the CLI."""

import ipaddress
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

MAX_CUSTOM_HEADERS = 5
MAX_HEADER_VALUE_LENGTH = 2048
# RFC 9110 token characters.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Headers we set ourselves (or that HTTP owns): a custom header may not replace them.
RESERVED_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "authorization",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
CGNAT_NETWORK = ipaddress.ip_network("100.64.0.0/10")


def validate_custom_headers(headers, *, has_api_key: bool = False) -> None:
    if headers in (None, ""):
        return
    if not isinstance(headers, dict):
        raise ValidationError({"headers": "Headers must be an object of name: value pairs."})
    errors = []
    if len(headers) > MAX_CUSTOM_HEADERS:
        errors.append(f"At most {MAX_CUSTOM_HEADERS} custom headers are allowed (got {len(headers)}).")
    seen: set[str] = set()
    for name, value in headers.items():
        lowered = str(name).lower()
        if not isinstance(name, str) or not HEADER_NAME_RE.fullmatch(name):
            errors.append(f"Header name {name!r} is not a valid HTTP header name.")
        elif lowered in RESERVED_HEADERS or (has_api_key and lowered == "x-api-key"):
            errors.append(f"Header {name!r} is set by Cohortsync and cannot be overridden.")
        elif lowered in seen:
            errors.append(f"Header {name!r} is given twice.")
        seen.add(lowered)
        if not isinstance(value, str):
            errors.append(f"Header {name!r} must have a text value.")
        elif any(ch in value for ch in "\r\n\0"):
            errors.append(f"Header {name!r} contains a line break or NUL character.")
        elif len(value) > MAX_HEADER_VALUE_LENGTH:
            errors.append(f"Header {name!r} is longer than {MAX_HEADER_VALUE_LENGTH} characters.")
        elif value != value.strip():
            errors.append(f"Header {name!r} starts or ends with whitespace.")
        elif not _is_latin1(value):
            # HTTP/1.1 header values are bytes; requests sends them as Latin-1.
            errors.append(f"Header {name!r} has characters that cannot be sent in an HTTP header.")
    if errors:
        raise ValidationError({"headers": errors})


def _is_latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def validate_destination_url(url: str) -> None:
    """Scheme, host and (for literal addresses) the SSRF rule, checked before saving.

    Names are resolved and checked again on the address actually connected to (sender).
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https"):
        raise ValidationError({"url": "URL must start with https:// or http://."})
    if parts.scheme == "http" and settings.COHORTSYNC_REQUIRE_HTTPS:
        raise ValidationError({"url": "Only https:// URLs are allowed on this installation."})
    if not parts.hostname:
        raise ValidationError({"url": "URL has no host."})
    if parts.username or parts.password:
        raise ValidationError({"url": "Put credentials in the Basic Auth fields, not in the URL."})
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError({"url": "URL has an invalid port."}) from None
    if settings.COHORTSYNC_ALLOW_PRIVATE_URLS:
        return
    host = parts.hostname.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        raise ValidationError({"url": "Loopback destinations are not allowed."})
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if is_forbidden_address(address):
        raise ValidationError({"url": f"Destination address {address} is private, loopback or reserved."})


def is_forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in CGNAT_NETWORK
    )


CONTENT_TYPE_RE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;\s*[A-Za-z0-9_.-]+=[A-Za-z0-9_.\"-]+)*$")


def validate_content_type(content_type: str) -> None:
    if not CONTENT_TYPE_RE.fullmatch(content_type or ""):
        raise ValidationError({"content_type": "Content type must look like type/subtype, e.g. application/json."})
