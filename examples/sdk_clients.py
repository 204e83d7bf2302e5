#!/usr/bin/env python
"""Segment's and Mixpanel's own Python libraries, sending to Cohortsync instead of the vendors.

    pip install segment-analytics-python mixpanel
    python examples/sdk_clients.py --host http://127.0.0.1:8000 \\
        --write-key csw_… --token cst_… [--secret css_…]

Keys: admin → SDK ingestion keys (or POST /api/v1/ingest-keys/). The only change to an app
already instrumented is the host; everything else is the vendors' documented API.
"""

import argparse
import time
from urllib.parse import urlsplit


def send_with_segment(*, host: str, write_key: str) -> None:
    from segment.analytics import Client

    analytics = Client(write_key, host=host, gzip=True)  # Segment: `analytics.host = host` on the module client
    analytics.identify("user-42", {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
                                   "phone": "+44 20 7946 0000", "plan": "pro"})
    analytics.track("user-42", "Played song", {"song": "Ada's theme", "seconds": 212})
    analytics.page("user-42", "Docs", "Pricing", {"path": "/pricing"})
    analytics.flush()  # the client batches in a thread; flush before exiting
    analytics.shutdown()


def send_with_mixpanel(*, host: str, token: str, secret: str | None) -> None:
    import mixpanel

    parts = urlsplit(host)
    if parts.scheme == "https":
        consumer = mixpanel.Consumer(api_host=parts.netloc)  # the one-line change
    else:  # api_host implies https; a plain-http development server is named endpoint by endpoint
        consumer = mixpanel.Consumer(events_url=f"{host}/track", people_url=f"{host}/engage",
                                     import_url=f"{host}/import")
    mp = mixpanel.Mixpanel(token, consumer=consumer)
    mp.people_set("user-7", {"$email": "grace@example.com", "$first_name": "Grace", "plan": "team"})
    mp.people_set_once("user-7", {"first_seen": "2026-01-01"})
    mp.people_increment("user-7", {"songs_played": 1})
    mp.track("user-7", "Played song", {"song": "Hopper's march"})
    if secret:  # older events go through /import, with the project secret
        mp.import_data(None, "user-7", "Played song", int(time.time()) - 30 * 86_400, api_secret=secret)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", required=True, help="Cohortsync's base URL, e.g. https://cohortsync.example.com")
    parser.add_argument("--write-key", required=True, help="a Segment write key (csw_…)")
    parser.add_argument("--token", required=True, help="a Mixpanel project token (cst_…)")
    parser.add_argument("--secret", help="a Mixpanel project secret (css_…), for /import")
    options = parser.parse_args()
    host = options.host.rstrip("/")
    send_with_segment(host=host, write_key=options.write_key)
    send_with_mixpanel(host=host, token=options.token, secret=options.secret)
    print("sent: 1 profile and 2 events with each client (1 more event through /import with --secret)")


if __name__ == "__main__":
    main()
