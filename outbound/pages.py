"""What the status pages of every app share: the run-history page size, the buttons that act
and say so, and panels that apps above add to a lower app's page.

Each app owns its pages (deliveries: syncs, campaigns: messages, cohorts: cohorts). A page
shows what apps above it know of its subject (a sync page the alerts watching the sync, a
cohort page its syncs, messages and alerts) through panels those apps register from their
AppConfig.ready(), so the page's app never imports them.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import URLPattern, path
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from .errors import BrokerUnavailable, StateConflict

RUNS_PER_PAGE = 20


@dataclass(frozen=True)
class Panel:
    page: str  # the page it joins: "sync", "cohort"
    order: int  # its place among the page's panels, smallest first
    template: str
    # The template's context for this page's subject and viewer.
    context: Callable[..., dict]


PANELS: list[Panel] = []


def panel_register(panel: Panel) -> None:
    if panel in PANELS:  # registered once, even if an AppConfig.ready() runs again
        return
    PANELS.append(panel)
    PANELS.sort(key=lambda registered: (registered.page, registered.order))


def panels_render(*, page: str, request: HttpRequest, subject: models.Model) -> list[SafeString]:
    """The HTML of the panels registered for this page, in their order."""
    return [
        render_to_string(panel.template, panel.context(user=request.user, subject=subject), request=request)
        for panel in PANELS
        if panel.page == page
    ]


def subject_action(*, visible: Callable, page: str, act: Callable, done: str) -> Callable:
    """A status page's button as a view (POST only, for people who may see the subject): act
    through a service and say so (`done`, formatted with the service's `result`), or say why the
    subject's state refused (StateConflict) or that the task queue is down (BrokerUnavailable:
    nothing was queued); then back to `page`.

    `visible(request, id)` gives the subject or a 404; the URL's one argument is its id.
    """

    @require_POST
    @login_required
    def view(request: HttpRequest, **url_kwargs) -> HttpResponse:
        subject = visible(request, *url_kwargs.values())
        try:
            result = act(subject)
        except StateConflict as exc:
            messages.error(request, str(exc))
        except BrokerUnavailable as exc:
            messages.error(request, f"The run was not queued: {exc}.")
        else:
            messages.success(request, done.format(result=result))
        return redirect(page, **url_kwargs)

    return view


def int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def subject_urls(subject: str, detail: Callable, **actions: Callable) -> list[URLPattern]:
    """A status page's URLs: `<subject>s/<id>/` (named `<subject>_detail`) and each action at
    `<subject>s/<id>/<action>/` (named `<subject>_<action>`); the views take `<subject>_id`."""
    prefix = f"{subject}s/<int:{subject}_id>/"
    return [path(prefix, detail, name=f"{subject}_detail")] + [
        path(f"{prefix}{action}/", view, name=f"{subject}_{action}") for action, view in actions.items()
    ]
