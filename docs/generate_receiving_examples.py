"""Regenerate the examples in docs/receiving.md from the code that builds real requests.

    python docs/generate_receiving_examples.py          # rewrite the example blocks in place
    python docs/generate_receiving_examples.py --check  # exit 1 when the document is stale

Each example block follows a marker line `<!-- example: NAME -->`; only the fenced block
after a marker is rewritten. tests/docs/test_receiving_doc.py runs the check, so the
document cannot drift from integrations/payloads.py, templating.py, signing.py and sender.py.
The examples are deterministic: the sample page of integrations.payloads, a fixed secret
and a fixed sending time.
"""

import base64
import dataclasses
import json
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "receiving.md"

# A secret for documentation only, so readers can check their verification code against it.
EXAMPLE_SECRET = "whsec_" + base64.b64encode(b"cohortsync-docs-example-secret!!").decode()
EXAMPLE_SENT_AT = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)  # 7 s after the sample page was computed
EXAMPLE_URL = "https://receiver.example.com/cohorts"
EXAMPLE_PROPERTIES = ("plan", "score")  # the sync's selected profile properties
EXAMPLE_HEADERS = (("X-Tenant", "acme"),)  # one of up to five custom headers
# The sample page (integrations.payloads.sample_context) is page 1 of 2 of a diff session; the
# full load shown for the mixpanel format is a session of its own.
FULL_LOAD_SESSION = uuid.UUID("0c5e3b52-2f0a-4f4e-8d4e-6a1f3c9b7a10")
API_KEY_PLACEHOLDER = "<your API key>"
BASIC_AUTH_PLACEHOLDER = "Basic <base64 of username:password>"
TEMPLATE_PRESET = "amplitude_user_ids"  # the preset shown as a whole request
# Headers the HTTP client adds on its own; their values depend on installed packages.
CLIENT_HEADERS = ("accept", "accept-encoding", "connection")

MARKER = re.compile(r"(<!-- example: (?P<name>[\w-]+) -->\n```(?P<lang>[\w-]*)\n)(?P<body>.*?)(^```$)",
                    re.DOTALL | re.MULTILINE)


def _django() -> None:
    from django.conf import settings

    if not settings.configured:
        sys.path.insert(0, str(ROOT))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()


def example_request(body: bytes, *, page_id: str, content_type: str = "application/json") -> str:
    """The request as it goes on the wire: the sender's own headers, with secrets as placeholders."""
    _django()
    from outbound.sender import Destination, open_session, page_request

    destination = Destination(
        url=EXAMPLE_URL, auth_username="username", auth_password="password", api_key=API_KEY_PLACEHOLDER,
        headers=EXAMPLE_HEADERS, content_type=content_type, signing_secrets=(EXAMPLE_SECRET,),
    )
    with open_session() as session:
        prepared = session.prepare_request(page_request(destination, body, page_id, EXAMPLE_SENT_AT))
    url = urlsplit(prepared.url)
    lines = [f"{prepared.method} {url.path} HTTP/1.1", f"Host: {url.netloc}"]
    for name, value in prepared.headers.items():
        if name.lower() in CLIENT_HEADERS:
            continue
        if name.lower() == "authorization":
            value = BASIC_AUTH_PLACEHOLDER
        lines.append(f"{name}: {value}")
    return "\n".join(lines) + "\n\n" + prepared.body.decode()


def _pretty(body: bytes | dict) -> str:
    value = json.loads(body) if isinstance(body, bytes) else body
    return json.dumps(value, indent=2, ensure_ascii=False)


def examples() -> dict[str, str]:
    """Every example block of docs/receiving.md, by name."""
    _django()
    from integrations import templating
    from integrations.payloads import (
        SAMPLE_ROWS,
        amplitude_page,
        mixpanel_page,
        page_id,
        sample_context,
        template_input,
    )
    from integrations.templating import PRESETS, compile_template, render_template
    from outbound.signing import signature_headers

    adds = sample_context(action="add_members")  # page 1 of a diff session
    removes = dataclasses.replace(adds, action="remove_members", page_count=2,
                                  page_id=page_id(uuid.UUID(adds.session_id), 2))
    members = dataclasses.replace(adds, action="members", session_id=str(FULL_LOAD_SESSION),
                                  page_id=page_id(FULL_LOAD_SESSION, 1))
    mixpanel = mixpanel_page(members, SAMPLE_ROWS, EXAMPLE_PROPERTIES)
    amplitude = amplitude_page(adds, SAMPLE_ROWS, EXAMPLE_PROPERTIES)
    payload_input = template_input(adds, SAMPLE_ROWS, EXAMPLE_PROPERTIES)
    rendered = {name: render_template(compile_template(source), payload_input).encode()
                for name, source in PRESETS.items()}
    signed = signature_headers(signing_secrets=(EXAMPLE_SECRET,), page_id=adds.page_id, sent_at=EXAMPLE_SENT_AT,
                               body=amplitude)

    blocks = {
        "mixpanel-request": example_request(mixpanel, page_id=members.page_id),
        "mixpanel-body": _pretty(mixpanel),
        "mixpanel-remove-body": _pretty(mixpanel_page(removes, SAMPLE_ROWS[:1], ())),
        "amplitude-request": example_request(amplitude, page_id=adds.page_id),
        "amplitude-body": _pretty(amplitude),
        "amplitude-remove-body": _pretty(amplitude_page(removes, SAMPLE_ROWS[:1], ())),
        "template-input": _pretty(payload_input),
        "template-request": example_request(rendered[TEMPLATE_PRESET], page_id=adds.page_id),
        "signature-example": "\n".join([
            f"secret             {EXAMPLE_SECRET}",
            f"webhook-id         {adds.page_id}",
            f"webhook-timestamp  {signed['webhook-timestamp']}",
            f"signed content     {adds.page_id}.{signed['webhook-timestamp']}.<the body of the amplitude example>",
            f"webhook-signature  {signed['webhook-signature']}",
        ]),
    }
    limits = [
        ("template", f"at most {templating.MAX_TEMPLATE_CHARS:,} characters"),
        ("output", f"at most {templating.MAX_OUTPUT_CHARS:,} characters a page"),
        ("text built", f"at most {templating.MAX_BUILT_CHARS:,} characters a page, on the way to the output"),
        ("render time", f"at most {templating.MAX_RENDER_SECONDS:g} s a page"),
        ("loops", f"nested at most {templating.MAX_LOOP_NESTING} deep, not recursive"),
        ("range()", f"at most {templating.MAX_RANGE:,} items"),
        ("'x' * n, replace()", f"at most {templating.MAX_VALUE_CHARS:,} characters"),
        ("nesting", f"at most {templating.MAX_NESTING} levels of the template's syntax"),
        ("integers", f"at most {templating.MAX_NUMBER_BITS} bits, as literals and as products"),
        ("filters", ", ".join(sorted(templating.ENVIRONMENT.filters.keys() - {"_tick"}))),
    ]
    blocks["template-limits"] = "\n".join(f"{name:<20}{value}" for name, value in limits)
    for name, source in PRESETS.items():
        blocks[f"preset-{name}"] = source.rstrip("\n")
        blocks[f"preset-{name}-output"] = rendered[name].decode().rstrip("\n")
    return blocks


def render_doc(text: str, blocks: dict[str, str]) -> str:
    """The document with every example block replaced by its generated text."""
    found = [match["name"] for match in MARKER.finditer(text)]
    if missing := sorted(set(blocks) - set(found)):
        raise ValueError(f"docs/receiving.md has no block for: {', '.join(missing)}")
    if unknown := sorted(set(found) - set(blocks)):
        raise ValueError(f"docs/receiving.md has blocks nothing generates: {', '.join(unknown)}")
    return MARKER.sub(lambda match: match[1] + blocks[match["name"]] + "\n" + match[5], text)


def main() -> int:
    current = DOC.read_text()
    updated = render_doc(current, examples())
    if "--check" in sys.argv[1:]:
        if updated != current:
            print("docs/receiving.md is stale: run python docs/generate_receiving_examples.py", file=sys.stderr)
            return 1
        return 0
    if updated != current:
        DOC.write_text(updated)
        print("docs/receiving.md updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
