"""OpenAPI: the Basic credentials of the SDK endpoints."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SegmentWriteKeyScheme(OpenApiAuthenticationExtension):
    target_class = "sdk_ingest.authentication.SegmentWriteKeyAuthentication"
    name = "segmentWriteKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic",
                "description": "A project's Segment write key (`csw_…`) as the username, no password."}


class MixpanelSecretScheme(OpenApiAuthenticationExtension):
    target_class = "sdk_ingest.authentication.MixpanelSecretAuthentication"
    name = "mixpanelSecret"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic",
                "description": "A project's Mixpanel secret (`css_…`) as the username and no password; or a "
                               "service account: any username, a Cohortsync API key as the password."}
