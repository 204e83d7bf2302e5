"""The users' status pages: a dashboard, one page per sync, per user message and per cohort.

A person sees, and may act on, the syncs, messages and cohorts of the projects they are a
member of (deliveries.selectors.projects_for_user); anything else is a 404 for them.
"""

import dataclasses

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from alerts import selectors as alert_selectors
from campaigns import selectors as message_selectors
from campaigns import services as message_services
from campaigns.models import Message
from cohorts.charts import size_chart

from . import selectors, services
from .dispatch import BrokerUnavailable
from .models import Sync

RUNS_PER_PAGE = 20


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        "syncs": selectors.sync_list_for_user(user=request.user),
        "user_messages": message_selectors.messages_described(
            messages=message_selectors.message_list_for_user(user=request.user)
        ),
        "firings": alert_selectors.alert_firings_for_user(user=request.user),
    }
    return render(request, "deliveries/dashboard.html", context)


@login_required
def sync_detail(request: HttpRequest, sync_id: int) -> HttpResponse:
    sync = _visible_sync(request, sync_id)
    # An alert's root-cause link (?run=<id>#run-<id>) opens the history page that holds its run.
    focus_run = _int_or_none(request.GET.get("run"))
    page = request.GET.get("page")
    if page is None and focus_run is not None:
        page = selectors.sync_run_page_number(sync=sync, run_id=focus_run, per_page=RUNS_PER_PAGE)
    context = {
        "sync": sync,
        "runs": Paginator(selectors.sync_run_history(sync=sync), RUNS_PER_PAGE).get_page(page),
        "focus_run": focus_run,
        "chart": size_chart(points=selectors.sync_activity(sync=sync)),
        "alerts": alert_selectors.alert_list_for_sync(sync=sync),
    }
    return render(request, "deliveries/sync_detail.html", context)


@require_POST
@login_required
def sync_resume(request: HttpRequest, sync_id: int) -> HttpResponse:
    sync = _visible_sync(request, sync_id)
    if sync.state != Sync.State.PAUSED:
        messages.info(request, "The sync is not paused.")
    else:
        services.sync_resume(sync=sync)
        messages.success(request, "Resumed: the sync is due now and runs within a minute.")
    return redirect("deliveries:sync", sync_id=sync.pk)


@require_POST
@login_required
def sync_run_now(request: HttpRequest, sync_id: int) -> HttpResponse:
    sync = _visible_sync(request, sync_id)
    if sync.state != Sync.State.ACTIVE:
        messages.error(request, f"A {sync.get_state_display().lower()} sync does not run: resume it first.")
    else:
        try:
            run = services.sync_request_run(sync=sync)
        except BrokerUnavailable as exc:
            messages.error(request, f"The run was not queued: {exc}.")
        else:
            messages.success(request, f"Run #{run.pk} is queued.")
    return redirect("deliveries:sync", sync_id=sync.pk)


@require_POST
@login_required
def sync_full_refresh(request: HttpRequest, sync_id: int) -> HttpResponse:
    sync = _visible_sync(request, sync_id)
    services.sync_request_full_refresh(sync=sync)
    messages.success(request, "The next run sends the whole cohort (members).")
    return redirect("deliveries:sync", sync_id=sync.pk)


def _visible_sync(request: HttpRequest, sync_id: int) -> Sync:
    return get_object_or_404(selectors.sync_list_for_user(user=request.user), pk=sync_id)


# --- User messages -------------------------------------------------------------------------


@login_required
def message_detail(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _visible_message(request, message_id)
    runs = Paginator(message_selectors.message_run_history(message=message), RUNS_PER_PAGE)
    context = {
        "message": message,
        "schedule_in_words": message_selectors.message_schedule_in_words(message=message),
        "runs": runs.get_page(request.GET.get("page")),
        # Shown once, after the redirect that follows the POST (a reload must not POST to the receiver again).
        "test_send": request.session.pop(_test_send_key(message), None),
    }
    return render(request, "deliveries/message_detail.html", context)


@require_POST
@login_required
def message_run_now(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _visible_message(request, message_id)
    if message.state != Message.State.ACTIVE:
        messages.error(request, "A paused message does not run: resume it first.")
    else:
        try:
            run = message_services.message_request_run(message=message)
        except BrokerUnavailable as exc:
            messages.error(request, f"The run was not queued: {exc}.")
        else:
            messages.success(request, f"Run #{run.pk} is queued.")
    return redirect("deliveries:message", message_id=message.pk)


@require_POST
@login_required
def message_pause(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _visible_message(request, message_id)
    if message.state == Message.State.PAUSED:
        messages.info(request, "The message is already paused.")
    else:
        message_services.message_pause(message=message)
        messages.success(request, "Paused: the message sends nothing until you resume it.")
    return redirect("deliveries:message", message_id=message.pk)


@require_POST
@login_required
def message_resume(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _visible_message(request, message_id)
    if message.state != Message.State.PAUSED:
        messages.info(request, "The message is not paused.")
    else:
        message_services.message_resume(message=message)
        messages.success(request, "Resumed: the message is active again.")
    return redirect("deliveries:message", message_id=message.pk)


@require_POST
@login_required
def message_send_test(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _visible_message(request, message_id)
    result = message_services.message_send_test(message=message)
    request.session[_test_send_key(message)] = dataclasses.asdict(result)
    return redirect(reverse("deliveries:message", kwargs={"message_id": message.pk}) + "#test-send")


def _visible_message(request: HttpRequest, message_id: int) -> Message:
    return get_object_or_404(message_selectors.message_list_for_user(user=request.user), pk=message_id)


def _test_send_key(message: Message) -> str:
    return f"message-test-send-{message.pk}"


# --- Cohorts -------------------------------------------------------------------------------


@login_required
def cohort_detail(request: HttpRequest, cohort_id: int) -> HttpResponse:
    cohort = get_object_or_404(selectors.cohort_list_for_user(user=request.user), pk=cohort_id)
    sizes = selectors.cohort_size_rows(cohort=cohort)
    context = {
        "cohort": cohort,
        "chart": size_chart(points=selectors.cohort_size_points(rows=sizes)),
        "recent_sizes": sizes[: selectors.RECENT_SIZES],
        "syncs": selectors.sync_list_for_user(user=request.user).filter(cohort=cohort),
        "cohort_messages": message_selectors.messages_described(
            messages=message_selectors.message_list_for_user(user=request.user).filter(cohort=cohort)
        ),
        "alerts": alert_selectors.alert_list_for_cohort(cohort=cohort),
    }
    return render(request, "deliveries/cohort_detail.html", context)


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
