"""What every API view shares above cohorts: who acts for a key, the 409 of a conflict, and the
one adapter from Django's errors to DRF responses (and JSON errors outside DRF's views).

The client's projects, project-scoped input, choice errors and pagination are in
cohorts.api_common, the lowest app with an API, so every app's API imports them downwards.
"""

import logging

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from outbound.errors import BrokerUnavailable, StateConflict

from .authentication import ApiKeyClient
from .models import ApiKey

logger = logging.getLogger(__name__)


def acting_person(request):
    """Who acts (pause emails go to them): the logged-in user, or whoever created the API key."""
    if isinstance(request.user, ApiKeyClient):
        return request.auth.created_by
    return request.user


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
    with field keys, a state change the object's state refuses (StateConflict, e.g. also a secret
    no key decrypts) or a delete blocked by dependent objects as a 409, a run the task queue
    refused (BrokerUnavailable) as a 503, and a 429 that says why."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_error_detail(exc))
    elif isinstance(exc, StateConflict):
        exc = Conflict(str(exc))
    elif isinstance(exc, ProtectedError):
        exc = Conflict(_protected_message(exc))
    elif isinstance(exc, BrokerUnavailable):
        exc = ServiceUnavailable(f"The run was not queued: {exc}.")
    elif type(exc) is exceptions.Throttled:  # the per-client budget's (others carry their own message)
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


class ApiJsonErrorsMiddleware:
    """/api/ clients get JSON errors in every mode: with DEBUG on, Django answers unknown URLs and
    crashes with its HTML debug pages (the handlers above serve only with DEBUG off)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (_is_api(request) and response.status_code >= 400
                and response.get("Content-Type", "").startswith("text/html")):
            detail = {400: "Bad request.", 404: "Not found.", 500: "Server error."}.get(
                response.status_code, response.reason_phrase)
            return JsonResponse({"detail": detail}, status=response.status_code)
        return response
