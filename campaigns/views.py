"""The message pages: one user message, its run history, and its buttons (run now, pause,
resume, test send).

A person sees, and may act on, the messages of the projects they are a member of
(selectors.message_list_for_user); anything else is a 404 for them.
"""

import dataclasses

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from outbound.pages import RUNS_PER_PAGE, subject_action

from . import selectors, services
from .models import Message


@login_required
def message_detail(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _visible_message(request, message_id)
    runs = Paginator(selectors.message_run_history(message=message), RUNS_PER_PAGE)
    context = {
        "message": message,
        "schedule_in_words": selectors.message_schedule_in_words(message=message),
        "runs": runs.get_page(request.GET.get("page")),
        # Shown once, after the redirect that follows the POST (a reload must not POST to the receiver again).
        "test_send": request.session.pop(_test_send_key(message), None),
    }
    return render(request, "campaigns/message_detail.html", context)


def _visible_message(request: HttpRequest, message_id: int) -> Message:
    return get_object_or_404(selectors.message_list_for_user(user=request.user), pk=message_id)


message_run_now = subject_action(
    visible=_visible_message, page="campaigns:message_detail",
    act=lambda message: services.message_request_run(message=message), done="Run #{result.pk} is queued.",
)
message_pause = subject_action(
    visible=_visible_message, page="campaigns:message_detail",
    act=lambda message: services.message_pause(message=message),
    done="Paused: the message sends nothing until you resume it.",
)
message_resume = subject_action(
    visible=_visible_message, page="campaigns:message_detail",
    act=lambda message: services.message_resume(message=message), done="Resumed: the message is active again.",
)


@require_POST
@login_required
def message_send_test(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _visible_message(request, message_id)
    result = services.message_send_test(message=message)
    request.session[_test_send_key(message)] = dataclasses.asdict(result)
    return redirect(reverse("campaigns:message_detail", kwargs={"message_id": message.pk}) + "#test-send")


def cohort_messages_panel(*, user, subject) -> dict:
    """The cohort page's panel: the messages to the cohort this person sees."""
    visible = selectors.message_list_for_user(user=user).filter(cohort=subject)
    return {"cohort_messages": selectors.messages_described(messages=visible)}



def _test_send_key(message: Message) -> str:
    return f"message-test-send-{message.pk}"
