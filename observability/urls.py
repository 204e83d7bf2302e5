from django.urls import path

from . import views
from .health import HealthzView

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
    path("healthz", HealthzView.as_view(), name="healthz"),
]
