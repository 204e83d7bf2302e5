from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    # The attempts list moved with its model to the delivery core (outbound): old links still work.
    path("admin/deliveries/deliveryattempt/",
         RedirectView.as_view(pattern_name="admin:outbound_deliveryattempt_changelist", query_string=True)),
    path("admin/", admin.site.urls),
    path("receiver/", include("integrations.urls")),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("observability.urls")),  # /metrics and /healthz
    path("", include("sdk_ingest.urls")),  # Segment's /v1/… and Mixpanel's /track, /engage, /import
    # The users' status pages, each app its own: the dashboard, syncs, messages, cohorts.
    path("", include("pages.urls")),
    path("", include("deliveries.urls")),
    path("", include("campaigns.urls")),
    path("", include("cohorts.urls")),
]

# API clients get JSON errors; everyone else Django's pages.
handler400 = "access.api.bad_request"
handler404 = "access.api.not_found"
handler500 = "access.api.server_error"
