"""The cohort pages (included at the site's root: /cohorts/<id>/)."""

from django.urls import path

from . import views

app_name = "cohorts"
urlpatterns = [
    path("cohorts/<int:cohort_id>/", views.cohort_detail, name="cohort_detail"),
]
