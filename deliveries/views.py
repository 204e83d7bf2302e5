"""The users' status pages: a dashboard of their syncs and one page per sync.

A person sees, and may resume, run or refresh, the syncs of the projects they are a member
of (deliveries.selectors.sync_list_for_user); any other sync is a 404 for them.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from cohorts.charts import size_chart

from . import selectors, services
from .models import Sync

RUNS_PER_PAGE = 20


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    syncs = selectors.sync_list_for_user(user=request.user)
    return render(request, "deliveries/dashboard.html", {"syncs": syncs})


@login_required
def sync_detail(request: HttpRequest, sync_id: int) -> HttpResponse:
    sync = _visible_sync(request, sync_id)
    runs = Paginator(selectors.sync_run_history(sync=sync), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"sync": sync, "runs": runs, "chart": size_chart(points=selectors.sync_activity(sync=sync))}
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
        run = services.sync_request_run(sync=sync)
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
