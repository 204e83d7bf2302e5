"""The cohort page: a cohort's size history, and what apps above show of it (its syncs,
messages and alerts) as panels (outbound.pages).

A person sees the cohorts of the projects they are a member of; anything else is a 404.
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from outbound.pages import panels_render

from . import selectors
from .charts import size_chart


@login_required
def cohort_detail(request: HttpRequest, cohort_id: int) -> HttpResponse:
    visible = selectors.cohort_list(projects=selectors.projects_for_user(user=request.user))
    cohort = get_object_or_404(visible.select_related("project"), pk=cohort_id)
    sizes = selectors.cohort_size_rows(cohort=cohort)
    context = {
        "cohort": cohort,
        "chart": size_chart(points=selectors.cohort_size_points(rows=sizes)),
        "recent_sizes": sizes[: selectors.RECENT_SIZES],
        "panels": panels_render(page="cohort", request=request, subject=cohort),
    }
    return render(request, "cohorts/cohort_detail.html", context)
