"""The dashboard, at the site's root. The other status pages belong to their apps
(deliveries.urls, campaigns.urls, cohorts.urls)."""

from django.urls import path

from . import views

app_name = "pages"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
