"""Request bodies of the REST API: JSON, refused with a 400 when nested deeper than any
request of the API needs (a body nested thousands deep would otherwise crash a recursive
walk further on, or the decoder itself)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from cohorts.json_depth import json_depth_exceeds

MAX_BODY_DEPTH = 64  # arrays and objects inside one another; rule definitions need about 16


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, with a nesting limit and a 400 (not a 500) when the decoder recurses too deep."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_BODY_DEPTH} levels deep") from None
        if json_depth_exceeds(data, MAX_BODY_DEPTH):
            raise ParseError(f"JSON parse error - nested more than {MAX_BODY_DEPTH} levels deep")
        return data
