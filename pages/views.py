"""The dashboard: what needs attention across apps (syncs, messages, recent alert firings).

The top layer: the one page that gathers several apps. Each app owns its own pages
(deliveries: syncs, campaigns: messages, cohorts: cohorts). A person sees the syncs,
messages and firings of the projects they are a member of (cohorts.selectors.projects_for_user).
"""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from alerts import selectors as alert_selectors
from campaigns import selectors as message_selectors
from deliveries import selectors as sync_selectors


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    context = {
        "syncs": sync_selectors.sync_list_for_user(user=request.user),
        "user_messages": message_selectors.messages_described(
            messages=message_selectors.message_list_for_user(user=request.user)
        ),
        "firings": alert_selectors.alert_firings_for_user(user=request.user),
    }
    return render(request, "pages/dashboard.html", context)
