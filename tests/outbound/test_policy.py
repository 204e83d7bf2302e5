"""The one classifier of a receiver's answer (docs/contract.md, "Reading the answer")."""

import json

import pytest

from outbound.policy import PAUSE_STATUSES, Outcome, Verdict, classify_response, classify_status


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_with_the_success_echo_is_delivered(status):
    verdict = classify_response(status, "OK", body(action="members", status="success"))

    assert verdict.outcome is Outcome.SUCCESS
    assert verdict.message == ""
    assert verdict.code == status


@pytest.mark.parametrize("content", [b"", b"OK", b"\xff\xfe\x00garbage", b"[1, 2]", b'"success"', b"{not json"])
def test_2xx_without_a_json_object_is_accepted_and_noted(content):
    verdict = classify_response(200, "OK", content)

    assert verdict.outcome is Outcome.SUCCESS
    assert verdict.message == "response body was not a JSON object"


@pytest.mark.parametrize(
    "code, outcome",
    [(400, Outcome.PAUSE), (401, Outcome.PAUSE), (403, Outcome.PAUSE), (404, Outcome.PAUSE), (410, Outcome.PAUSE),
     (500, Outcome.TRANSIENT), (503, Outcome.TRANSIENT), (429, Outcome.TRANSIENT),
     (418, Outcome.PAUSE), (409, Outcome.PAUSE), (408, Outcome.TRANSIENT), (600, Outcome.FAIL)],
)
def test_2xx_whose_body_says_failure_is_decided_by_its_error_code(code, outcome):
    verdict = classify_response(200, "OK", body(action="add_members", status="failure",
                                                error={"message": "x", "code": code}))

    assert verdict.outcome is outcome
    assert verdict.message == "x"
    assert verdict.code == code


@pytest.mark.parametrize("error", [None, {}, {"code": "400"}, {"code": True}, {"code": 200}, "broken"])
def test_2xx_failure_without_a_usable_error_code_fails_the_run(error):
    payload = {"status": "failure"} if error is None else {"status": "failure", "error": error}

    verdict = classify_response(200, "OK", json.dumps(payload).encode())

    assert verdict.outcome is Outcome.FAIL
    assert verdict.message  # something to show in the UI, never empty


@pytest.mark.parametrize("status", sorted(PAUSE_STATUSES - set(range(300, 400))))
def test_permanent_statuses_pause_and_keep_the_receivers_message(status):
    verdict = classify_response(status, "Nope", body(status="failure", error={"message": "bad token", "code": status}))

    assert verdict == Verdict(Outcome.PAUSE, "bad token", status)


def test_a_refusal_without_a_message_uses_the_status_text_and_the_start_of_the_body():
    verdict = classify_response(404, "Not Found", b"<html>\n  gone " + b"x" * 1000 + b"</html>")

    assert verdict.outcome is Outcome.PAUSE
    assert verdict.message == "404 Not Found: <html> gone " + "x" * 188
    assert verdict.code == 404
    assert classify_response(404, "Not Found", b"").message == "404 Not Found"


@pytest.mark.parametrize("payload, explanation", [
    ({"error": {"message": "bad token", "code": 401}}, "bad token"),
    ({"error": "invalid_token"}, "invalid_token"),
    ({"detail": "Authentication credentials were not provided."}, "Authentication credentials were not provided."),
    ({"message": "Unknown cohort"}, "Unknown cohort"),
    ({"errors": [{"message": "cohort is archived"}]}, "cohort is archived"),
    ({"errors": [{"status": "422", "detail": "members is required"}]}, "members is required"),
    ({"errors": [{"title": "Payload Too Large"}]}, "Payload Too Large"),
    ({"errors": ["plain text error"]}, "plain text error"),
    # The first shape that says something wins; empty or non-text values are skipped.
    ({"error": {"message": ""}, "detail": {"x": 1}, "message": "  spaced  "}, "spaced"),
])
def test_the_receivers_explanation_is_read_from_common_shapes(payload, explanation):
    verdict = classify_response(401, "Unauthorized", body(**payload))

    assert verdict == Verdict(Outcome.PAUSE, explanation, 401)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_pauses_with_its_location(status):
    verdict = classify_response(status, "Moved", b"", location="https://new.example.com/hook")

    assert verdict == Verdict(
        Outcome.PAUSE,
        "the receiver redirects to https://new.example.com/hook; redirects are not followed: update the URL",
        status,
    )


@pytest.mark.parametrize("status", [402, 405, 409, 413, 415, 418, 422, 451, 499])
def test_every_other_4xx_pauses(status):
    assert classify_status(status) is Outcome.PAUSE


@pytest.mark.parametrize("status", [408, 425])
def test_request_timeout_and_too_early_are_transient(status):
    assert classify_response(status, "", b"").outcome is Outcome.TRANSIENT


def test_a_long_error_message_is_cut():
    verdict = classify_response(400, "Bad Request", body(error={"message": "m" * 5000}))

    assert verdict.message == "m" * 500


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 429])
def test_5xx_and_429_are_transient(status):
    assert classify_response(status, "", b"").outcome is Outcome.TRANSIENT


@pytest.mark.parametrize("status", [100, 600, 999])
def test_other_statuses_fail_without_retries(status):
    assert classify_status(status) is Outcome.FAIL
    verdict = classify_response(status, "Whatever", b"")
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == f"{status} Whatever"
