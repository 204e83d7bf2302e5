"""The last day's success rate and latency percentiles, for the sync page and the connection's
admin page: one tag each, so a page that moves carries one line."""

from django import template

from .. import selectors

register = template.Library()


@register.inclusion_tag("observability/_delivery_stats.html")
def sync_delivery_stats(sync):
    return {"stats": selectors.sync_delivery_stats(sync_id=sync.pk), "subject": "sync", "admin": False}


@register.inclusion_tag("observability/_delivery_stats.html")
def connection_delivery_stats(connection):
    return {"stats": selectors.connection_delivery_stats(connection_id=connection.pk), "subject": "connection",
            "admin": True}
