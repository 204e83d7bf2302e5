"""Wait until a URL answers, then exit 0; exit 1 after a timeout. Standard library only.

Procfile.dev starts the worker behind it, so the demo's first page is not sent to a web
server that is not listening yet (a refused connection would count as a failed attempt).
"""

import argparse
import sys
import time
import urllib.error
import urllib.request


def wait_for(url: str, *, timeout: float, interval: float = 0.25) -> bool:
    """True as soon as `url` gives any HTTP answer (a 302 to the login page counts)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
    deadline = time.monotonic() + timeout
    while True:
        try:
            opener.open(url, timeout=2).close()
            return True
        except urllib.error.HTTPError:
            return True  # an answer, even a 4xx/5xx: the server is listening
        except (urllib.error.URLError, OSError):
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    args = parser.parse_args()
    if wait_for(args.url, timeout=args.timeout):
        return 0
    print(f"{args.url} did not answer within {args.timeout:g} s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
