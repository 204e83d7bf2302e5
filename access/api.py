"""What every API view shares: the client's projects, project-scoped fields, pagination, and
the one adapter from Django's errors to DRF responses.

A client (an API key, or a logged-in user) sees only the objects of the projects it acts for:
views filter their querysets by `client_projects`, so another project's object is a 404.
"""

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, ValidationError as DjangoValidationError
from django.db.models import ProtectedError, QuerySet
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, pagination, serializers
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from cohorts.models import Project
from deliveries.dispatch import BrokerUnavailable

from .authentication import ApiKeyClient
from .models import ApiKey
from .selectors import projects_for_client


# The largest id (a BigAutoField, SQLite's INTEGER): a larger filter value would overflow the query.
MAX_ID = 2**63 - 1


def acting_person(request):
    """Who acts (pause emails go to them): the logged-in user, or whoever created the API key."""
    if isinstance(request.user, ApiKeyClient):
        return request.auth.created_by
    return request.user


def client_projects(request) -> QuerySet[Project]:
    api_key = request.auth if isinstance(request.auth, ApiKey) else None
    return projects_for_client(user=request.user, api_key=api_key)


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the current state of the object."
    default_code = "conflict"


class ServiceUnavailable(exceptions.APIException):
    status_code = 503
    default_detail = "A service this request needs is unavailable; try again shortly."
    default_code = "service_unavailable"


# --- Errors ---------------------------------------------------------------------------


def api_exception_handler(exc, context):
    """DRF's handler, plus: model and service validation (Django's ValidationError) as a 400
    with field keys, a delete blocked by dependent objects as a 409, and a 429 that says why."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_error_detail(exc))
    elif isinstance(exc, ProtectedError):
        exc = Conflict(_protected_message(exc))
    elif isinstance(exc, BrokerUnavailable):
        exc = ServiceUnavailable(f"The run was not queued: {exc}.")
    elif isinstance(exc, exceptions.Throttled) and not isinstance(exc, _ClientThrottled):
        exc = _ClientThrottled(context["request"], exc.wait)
    return exception_handler(exc, context)


def validation_error_detail(error: DjangoValidationError) -> dict[str, list[str]]:
    """Django's {field: [messages]} with DRF's key for errors that name no field."""
    if hasattr(error, "error_dict"):
        return {
            (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): messages
            for field, messages in error.message_dict.items()
        }
    return {api_settings.NON_FIELD_ERRORS_KEY: error.messages}


def _protected_message(error: ProtectedError) -> str:
    blockers = list(error.protected_objects)
    meta = blockers[0]._meta
    name = meta.verbose_name if len(blockers) == 1 else meta.verbose_name_plural
    ids = ", ".join(str(obj.pk) for obj in blockers[:10])
    them = "it" if len(blockers) == 1 else "them"
    return f"Cannot delete it: it is used by {len(blockers)} {name} ({ids}); delete {them} first."


class _ClientThrottled(exceptions.Throttled):
    def __init__(self, request, wait):
        count, _, period = settings.COHORTSYNC_API_THROTTLE_RATE.partition("/")
        who = "this API key" if isinstance(request.auth, ApiKey) else "this client"
        # DRF appends "Expected available in N seconds." and the handler sets Retry-After.
        super().__init__(wait, f"Too many requests: {who} may make {count} requests per {period}.")


# --- Project-scoped input ---------------------------------------------------------------


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An id of an object in a project the client acts for; other projects' objects do not exist for it."""

    def __init__(self, *, project_path: str = "project", **kwargs):
        self.project_path = project_path
        super().__init__(**kwargs)

    def get_queryset(self):
        projects = client_projects(self.context["request"])
        return super().get_queryset().filter(**{f"{self.project_path}__in": projects})


class ProjectScopedInput(serializers.Serializer):
    """Input that creates or names something in one project: the project is implied for an API
    key and for a user of exactly one project; a user of several projects names it."""

    project = ScopedPrimaryKeyRelatedField(
        queryset=Project.objects.all(), project_path="pk", required=False,
        help_text="Project id. Implied for API keys and for users of a single project.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs.get("project") is None:
            attrs["project"] = default_project(self.context["request"])
        return attrs


def default_project(request) -> Project:
    projects = list(client_projects(request)[:2])
    if len(projects) == 1:
        return projects[0]
    if not projects:
        raise exceptions.ValidationError({"project": ["You are not a member of any project."]})
    raise exceptions.ValidationError({"project": ["You are a member of several projects: give the project id."]})


# --- Pagination -------------------------------------------------------------------------


class PagePagination(pagination.PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class IdCursorPagination(pagination.CursorPagination):
    """Keyset pages by id for lists that may be huge (cohort members): no COUNT, no OFFSET."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "id"


# --- Errors outside DRF's views (unknown URLs, crashes) ------------------------------------


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    """Errors Django answers before a view runs, e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return JsonResponse({"detail": f"The request body is larger than the {limit:,} bytes allowed: "
                                       "send smaller batches."}, status=400)
    return JsonResponse({"detail": "Bad request."}, status=400)


def not_found(request, exception):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"detail": "Server error."}, status=500)
    return defaults.server_error(request)
