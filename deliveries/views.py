"""The sync pages: one sync, its run history, and its buttons (run now, resume, full refresh).

A person sees, and may act on, the syncs of the projects they are a member of
(selectors.sync_list_for_user); anything else is a 404 for them. Alerts watching the sync
join the page as a panel (outbound.pages).
"""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from cohorts.charts import size_chart
from outbound.pages import RUNS_PER_PAGE, int_or_none, panels_render, subject_action

from . import selectors, services
from .engine.preview import sync_preview
from .models import Sync


@login_required
def sync_detail(request: HttpRequest, sync_id: int) -> HttpResponse:
    sync = _visible_sync(request, sync_id)
    # An alert's root-cause link (?run=<id>#run-<id>) opens the history page that holds its run.
    focus_run = int_or_none(request.GET.get("run"))
    page = request.GET.get("page")
    if page is None and focus_run is not None:
        page = selectors.sync_run_page_number(sync=sync, run_id=focus_run, per_page=RUNS_PER_PAGE)
    context = {
        "sync": sync,
        "runs": Paginator(selectors.sync_run_history(sync=sync), RUNS_PER_PAGE).get_page(page),
        "focus_run": focus_run,
        "chart": size_chart(points=selectors.sync_activity(sync=sync)),
        "panels": panels_render(page="sync", request=request, subject=sync),
    }
    return render(request, "deliveries/sync_detail.html", context)


def _visible_sync(request: HttpRequest, sync_id: int) -> Sync:
    return get_object_or_404(selectors.sync_list_for_user(user=request.user), pk=sync_id)


sync_resume = subject_action(
    visible=_visible_sync, page="deliveries:sync_detail",
    act=lambda sync: services.sync_resume(sync=sync), done="Resumed: the sync is due now and runs within a minute.",
)
sync_run_now = subject_action(
    visible=_visible_sync, page="deliveries:sync_detail",
    act=lambda sync: services.sync_request_run(sync=sync), done="Run #{result.pk} is queued.",
)
sync_full_refresh = subject_action(
    visible=_visible_sync, page="deliveries:sync_detail",
    act=lambda sync: services.sync_request_full_refresh(sync=sync),
    done="The next run sends the whole cohort (members).",
)


def cohort_syncs_panel(*, user, subject) -> dict:
    """The cohort page's panel: the syncs of the cohort this person sees."""
    return {"syncs": selectors.sync_list_for_user(user=user).filter(cohort=subject)}


@require_POST
@login_required
def sync_preview_next_run(request: HttpRequest, sync_id: int) -> HttpResponse:
    """A dry run: POST because it stages the cohort (work, though nothing changes)."""
    sync = _visible_sync(request, sync_id)
    return render(request, "deliveries/sync_preview.html", {"sync": sync, "preview": sync_preview(sync=sync)})
