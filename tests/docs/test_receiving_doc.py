"""docs/receiving.md cannot drift: its examples are regenerated from the code that builds real
requests and must match exactly; the signed examples verify with the `standardwebhooks`
package; the verification snippet the page shows works."""

import importlib.util
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import standardwebhooks.webhooks
from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "receiving.md"


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_receiving_examples",
                                                  ROOT / "docs" / "generate_receiving_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def blocks(doc: str) -> dict[str, tuple[str, str]]:
    """The example blocks of the document: name -> (language, text)."""
    return {match["name"]: (match["lang"], match["body"].removesuffix("\n")) for match in generator.MARKER.finditer(doc)}


def http_request(text: str) -> tuple[str, dict[str, str], bytes]:
    head, _, body = text.partition("\n\n")
    request_line, *header_lines = head.split("\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return request_line, headers, body.encode()


@pytest.fixture
def at_example_time(monkeypatch):
    """The library's clock at the examples' sending time, so their timestamps are fresh."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return generator.EXAMPLE_SENT_AT.astimezone(tz)

    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", Clock)


def test_every_example_matches_what_the_code_generates(doc):
    assert generator.render_doc(doc, generator.examples()) == doc, (
        "docs/receiving.md is stale: run python docs/generate_receiving_examples.py")


def test_every_generated_example_has_its_place_in_the_document(doc):
    assert set(blocks(doc)) == set(generator.examples())


def test_the_generator_refuses_a_document_that_lost_a_block(doc):
    damaged = doc.replace("<!-- example: amplitude-body -->", "")
    with pytest.raises(ValueError, match="amplitude-body"):
        generator.render_doc(damaged, generator.examples())


def test_a_changed_example_is_caught(doc):
    stale = doc.replace('"in_cohort": false', '"in_cohort": "false"', 1)
    assert stale != doc
    assert generator.render_doc(stale, generator.examples()) == doc


def test_the_check_command_passes(doc):
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "generate_receiving_examples.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["mixpanel-request", "amplitude-request", "template-request"])
def test_example_requests_are_exact_and_verify_with_the_library(doc, at_example_time, name):
    lang, text = blocks(doc)[name]
    request_line, headers, body = http_request(text)
    assert lang == "http"
    assert request_line == "POST /cohorts HTTP/1.1"
    assert headers["User-Agent"].startswith("Cohortsync/")
    assert headers["Content-Type"] == "application/json"
    assert headers["x-api-key"] == "<your API key>"
    assert headers["Authorization"] == "Basic <base64 of username:password>"
    assert int(headers["Content-Length"]) == len(body)
    json.loads(body)
    Webhook(generator.EXAMPLE_SECRET).verify(body, headers)
    assert int(headers["webhook-timestamp"]) == int(generator.EXAMPLE_SENT_AT.timestamp())


def test_the_amplitude_example_names_its_page_id_twice(doc):
    _, headers, body = http_request(blocks(doc)["amplitude-request"][1])
    assert json.loads(body)["message_id"] == headers["webhook-id"]


def test_the_signature_example_is_the_one_of_the_amplitude_request(doc):
    values = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in blocks(doc)["signature-example"][1].split("\n"))
    _, headers, body = http_request(blocks(doc)["amplitude-request"][1])
    assert values["secret"] == generator.EXAMPLE_SECRET
    assert values["webhook-id"] == headers["webhook-id"]
    assert values["webhook-signature"] == headers["webhook-signature"]
    sent_at = datetime.fromtimestamp(int(values["webhook-timestamp"]), tz=UTC)
    assert Webhook(values["secret"]).sign(values["webhook-id"], sent_at, body.decode()) == values["webhook-signature"]


def test_json_examples_are_json(doc):
    json_blocks = {name: text for name, (lang, text) in blocks(doc).items() if lang == "json"}
    assert len(json_blocks) == 8
    for name, text in json_blocks.items():
        try:
            json.loads(text)
        except ValueError as exc:
            pytest.fail(f"{name}: {exc}")


def test_the_verification_snippet_works(doc, at_example_time):
    (snippet,) = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    namespace = {}
    exec(snippet.replace('"whsec_..."', repr(generator.EXAMPLE_SECRET)), namespace)  # noqa: S102 - the page's own code
    _, headers, body = http_request(blocks(doc)["amplitude-request"][1])

    assert namespace["verified_page"](body, headers)["cohort_name"] == "Pro users"
    assert namespace["verified_page"](body.replace(b"Pro users", b"Pro userz"), headers) is None
    assert namespace["verified_page"](body, {**headers, "webhook-timestamp": "1767225000"}) is None
