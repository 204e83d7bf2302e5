"""OpenAPI: the key scheme, and the error answers every operation can give (so clients and
Schemathesis know them)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorOutput(serializers.Serializer):
    detail = serializers.CharField()


VALIDATION_ERROR = {
    "type": "object",
    "description": "Field name (or `non_field_errors`) to its messages; nested for nested input.",
    "additionalProperties": {},
}
ERROR_RESPONSES = {
    "400": OpenApiResponse(VALIDATION_ERROR, "Invalid input: messages by field."),
    "401": OpenApiResponse(ErrorOutput, "No credentials, or an unknown or revoked API key."),
    "403": OpenApiResponse(ErrorOutput, "Not allowed (e.g. a session request without its CSRF token)."),
    "404": OpenApiResponse(ErrorOutput, "No such object in the projects this client acts for (or no such page)."),
    "429": OpenApiResponse(ErrorOutput, "Too many requests for this API key or user: see Retry-After."),
}
# A run request whose task the broker refused (outbound.errors.BrokerUnavailable).
BROKER_DOWN = OpenApiResponse(ErrorOutput, "The task queue is unavailable: nothing was queued; try again shortly.")
RESPONSE_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer realm=\"api\"`"}},
    "429": {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait before trying again."}},
}


class ApiAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in ERROR_RESPONSES.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
            if code in RESPONSE_HEADERS:
                responses[code].setdefault("headers", {}).update(RESPONSE_HEADERS[code])
        return responses


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "access.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A project's API key: `Authorization: Bearer cs_…` (admin → API keys, or "
            "`manage.py create_api_key`).",
        }
