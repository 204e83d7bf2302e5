"""The built-in test receiver: stores what arrives and shows it, page by page.

Off unless COHORTSYNC_TEST_RECEIVER=true (quickstart and the tests turn it on): anyone may post
to it, so a production server does not offer it.
"""

from urllib.parse import parse_qs

import orjson
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from .models import ReceivedWebhook
from .selectors import inbox_readable_by

# Never keep credentials that a sender put in its headers.
REDACTED_HEADERS = {"authorization", "x-api-key", "cookie"}
INBOX_PAGE_SIZE = 100
FOLD_BODY_LINES = 40  # longer bodies (a page of 1000 members) start folded


@csrf_exempt
def receiver_inbox(request: HttpRequest, inbox: str) -> HttpResponse:
    if not settings.COHORTSYNC_TEST_RECEIVER:
        raise Http404("The test receiver is off (COHORTSYNC_TEST_RECEIVER).")
    if request.method == "POST":
        return _receive(request, inbox)
    return _show_inbox(request, inbox)


def _receive(request: HttpRequest, inbox: str) -> HttpResponse:
    limit = settings.COHORTSYNC_TEST_RECEIVER_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit or len(request.body) > limit:
        return JsonResponse({"status": "failure", "error": {"message": f"The body is larger than the {limit:,} bytes "
                                                                      "this test receiver keeps.", "code": 413}},
                            status=413)
    # PostgreSQL text refuses NUL characters; keep everything else as it came.
    body = request.body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    payload = _decoded(request.body)
    parameters = payload.get("parameters", {}) if isinstance(payload, dict) else {}
    headers = {
        name: ("[redacted]" if name.lower() in REDACTED_HEADERS else value)
        for name, value in request.headers.items()
    }
    ReceivedWebhook.objects.create(
        inbox=inbox,
        headers=headers,
        body=body,
        action=str(payload.get("action", ""))[:30] if isinstance(payload, dict) else "",
        session_id=str(parameters.get("mixpanel_session_id", ""))[:100] if isinstance(parameters, dict) else "",
        page_id=request.headers.get("webhook-id", "")[:100],
    )
    action = payload.get("action") if isinstance(payload, dict) else None
    return JsonResponse({"action": action, "status": "success"})


def _decoded(body: bytes):
    """A JSON body, or a user message's form body (`users=<JSON list>`) as {"users": [...]}; else None."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
        if list(fields) == ["users"]:
            return {"users": orjson.loads(fields["users"][0])}
    except (ValueError, orjson.JSONDecodeError):
        pass
    return None


@login_required
def _show_inbox(request: HttpRequest, inbox: str) -> HttpResponse:
    if not inbox_readable_by(user=request.user, inbox=inbox):
        raise Http404("No such inbox among your projects' connections.")
    received = list(ReceivedWebhook.objects.filter(inbox=inbox)[:INBOX_PAGE_SIZE])
    for item in received:
        decoded = _decoded(item.body.encode())
        item.pretty_body = item.body if decoded is None else orjson.dumps(decoded, option=orjson.OPT_INDENT_2).decode()
        item.member_count = _member_count(decoded)
        item.body_lines = item.pretty_body.count("\n") + 1
        item.folded = item.body_lines > FOLD_BODY_LINES
    return render(request, "integrations/inbox.html", {"inbox": inbox, "received": received})


def _member_count(decoded) -> int | None:
    """People in a page: `members` of a cohort page, `users` of an amplitude page or a message batch."""
    if not isinstance(decoded, dict):
        return None
    parameters = decoded.get("parameters")
    people = parameters.get("members") if isinstance(parameters, dict) else decoded.get("users")
    return len(people) if isinstance(people, list) else None
