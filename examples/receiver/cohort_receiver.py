"""A small receiver for Cohortsync cohort webhooks (the default `mixpanel` format).

Standard library only, plus the `standardwebhooks` package when a signing secret is set.
It does what docs/receiving.md asks of a receiver:

- verifies the Standard Webhooks signature (any of several secrets, for rotations),
- drops a page it has already applied (same `webhook-id`: a retry after a lost answer),
- keeps a copy of each cohort that converges: `members` pages of a session replace the copy
  once all `total_pages` of that session have arrived; `add_members` / `remove_members`
  apply at once and are idempotent,
- answers `{"action": <echo>, "status": "success"}`, or 400/401 with an error that pauses the
  sync, or 5xx when it could not store what it received (Cohortsync retries).

Run it:  python examples/receiver/cohort_receiver.py --port 8080 --secret whsec_... --state cohorts.json
"""

import argparse
import json
import logging
import os
import socket
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

logger = logging.getLogger("cohort_receiver")

MAX_BODY_BYTES = 64 * 1024 * 1024
SEEN_PAGE_IDS = 100_000  # how many page ids to remember; retries come within minutes
ACTIONS = ("members", "add_members", "remove_members")


class Refused(Exception):
    """A request we will not apply; the status tells Cohortsync whether to pause (4xx)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class CohortStore:
    """The receiver's copy of every cohort it is sent, and what it needs to converge.

    One lock: pages of a sync arrive one at a time anyway, and applying a page is cheap.
    """

    def __init__(self, path: Path | None = None):
        self.path = path
        self.lock = threading.Lock()
        self.cohorts: dict[str, dict[str, dict]] = {}  # cohort key -> distinct id -> member
        self.sessions: dict[str, dict] = {}  # members sessions still collecting pages
        self.seen: OrderedDict[str, None] = OrderedDict()  # page ids applied, oldest first
        self.duplicates = 0
        if path is not None and path.exists():
            self._load()

    def apply(self, page_id: str, body: dict) -> str:
        """Apply one page; returns its action. A page id seen before changes nothing."""
        action, parameters = _parse(body)
        with self.lock:
            if page_id in self.seen:
                self.duplicates += 1
                logger.info("page %s: duplicate, dropped", page_id)
                return action
            key = f"{parameters['mixpanel_project_id']}:{parameters['mixpanel_cohort_id']}"
            members = {member["mixpanel_distinct_id"]: member for member in parameters["members"]}
            try:
                if action == "members":
                    self._collect(key, parameters, members)
                elif action == "add_members":
                    self.cohorts.setdefault(key, {}).update(members)
                else:
                    cohort = self.cohorts.setdefault(key, {})
                    for distinct_id in members:
                        cohort.pop(distinct_id, None)
                self.seen[page_id] = None
                while len(self.seen) > SEEN_PAGE_IDS:
                    self.seen.popitem(last=False)
                self._save()
            except OSError:
                # Not stored, so not applied: forget it in memory too, and let Cohortsync retry.
                self._restore()
                raise
        return action

    def _collect(self, key: str, parameters: dict, members: dict[str, dict]) -> None:
        """Hold a full load's pages until the whole session is here, then replace the copy."""
        session_id = parameters["mixpanel_session_id"]
        page_info = parameters["page_info"]
        # A newer full load of this cohort supersedes one that never finished (its run failed).
        for stale in [s for s, session in self.sessions.items() if session["cohort"] == key and s != session_id]:
            del self.sessions[stale]
        session = self.sessions.setdefault(session_id, {"cohort": key, "total_pages": page_info["total_pages"],
                                                        "pages": {}})
        session["pages"][str(page_info["page_count"])] = members
        if len(session["pages"]) == session["total_pages"]:
            copy = {}
            for page in session["pages"].values():
                copy.update(page)
            self.cohorts[key] = copy
            del self.sessions[session_id]

    def snapshot(self) -> dict[str, list[str]]:
        with self.lock:
            return {key: sorted(members) for key, members in self.cohorts.items()}

    def _save(self) -> None:
        if self.path is None:
            return
        state = {"cohorts": self.cohorts, "sessions": self.sessions, "seen": list(self.seen)}
        temporary = self.path.with_suffix(self.path.suffix + ".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.path)  # atomic: a crash leaves the old state or the new one

    def _load(self) -> None:
        state = json.loads(self.path.read_text())
        self.cohorts = state["cohorts"]
        self.sessions = state["sessions"]
        self.seen = OrderedDict.fromkeys(state["seen"])

    def _restore(self) -> None:
        if self.path is not None and self.path.exists():
            self._load()
        else:
            self.cohorts, self.sessions, self.seen = {}, {}, OrderedDict()


def _parse(body) -> tuple[str, dict]:
    if not isinstance(body, dict) or body.get("action") not in ACTIONS:
        raise Refused(400, "expected a Cohortsync page: action members, add_members or remove_members")
    parameters = body.get("parameters")
    try:
        page_info = parameters["page_info"]
        valid = (
            all(isinstance(parameters[name], str) for name in ("mixpanel_project_id", "mixpanel_cohort_id",
                                                                "mixpanel_session_id"))
            and isinstance(page_info["total_pages"], int) and isinstance(page_info["page_count"], int)
            and all(isinstance(member["mixpanel_distinct_id"], str) for member in parameters["members"])
        )
    except (KeyError, TypeError):
        valid = False
    if not valid:
        raise Refused(400, "the page's parameters are incomplete")
    return body["action"], parameters


class SignatureCheck:
    """Standard Webhooks verification with the `standardwebhooks` package, for any of the secrets."""

    def __init__(self, secrets: list[str]):
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        self.webhooks = [Webhook(secret) for secret in secrets]
        self.error = WebhookVerificationError

    def verify(self, body: bytes, headers: dict[str, str]) -> None:
        for webhook in self.webhooks:
            try:
                webhook.verify(body, headers, json_parse=False)
                return
            except self.error:
                continue
        raise Refused(401, "invalid or missing webhook signature")


class CohortReceiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, store: CohortStore, secrets: list[str] = (),
                 api_key: str = ""):
        super().__init__(address, Handler)
        self.store = store
        self.signature_check = SignatureCheck(list(secrets)) if secrets else None
        self.api_key = api_key

    def url(self, path: str = "/cohorts") -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{path}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Cohortsync sends a run's pages on one connection
    server: CohortReceiver

    def setup(self):
        super().setup()
        # Each answer goes out in one write; without NODELAY keep-alive stalls on Nagle + delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self):
        self._answer(200, self.server.store.snapshot())

    def do_POST(self):
        action = None
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise Refused(413, "page too large")
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            if self.server.api_key and headers.get("x-api-key") != self.server.api_key:
                raise Refused(401, "invalid API key")
            if self.server.signature_check is not None:
                self.server.signature_check.verify(body, headers)
            try:
                page = json.loads(body)
            except ValueError:
                raise Refused(400, "the body is not JSON") from None
            action = page.get("action") if isinstance(page, dict) else None
            page_id = headers.get("webhook-id")
            if not page_id:
                raise Refused(400, "missing webhook-id header")
            self.server.store.apply(page_id, page)
        except Refused as refused:
            self._answer(refused.status, _failure(action, refused.message, refused.status))
        except OSError:
            logger.exception("could not store a page")
            self._answer(503, _failure(action, "could not store the page, try again", 503))
        else:
            self._answer(200, {"action": action, "status": "success"})

    def _answer(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        try:
            self.wfile.write(head.encode() + data)  # one write
        except (BrokenPipeError, ConnectionResetError):
            pass  # Cohortsync gave up waiting; it retries the page and we drop the duplicate


def _failure(action, message: str, code: int) -> dict:
    return {"action": action, "status": "failure", "error": {"message": message, "code": code}}


def serve(host: str, port: int, *, secrets: list[str], api_key: str = "", state: Path | None = None) -> None:
    server = CohortReceiver((host, port), store=CohortStore(state), secrets=secrets, api_key=api_key)
    logger.info("receiving cohort pages at %s (signatures %s)", server.url(),
                "verified" if secrets else "NOT verified")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--secret", action="append", default=[],
                        help="signing secret (whsec_...); repeat it during a rotation to accept both")
    parser.add_argument("--api-key", default=os.environ.get("COHORT_RECEIVER_API_KEY", ""),
                        help="require this x-api-key header")
    parser.add_argument("--state", type=Path, help="keep the cohort copies in this JSON file")
    args = parser.parse_args()
    secrets = args.secret or [s for s in os.environ.get("COHORT_RECEIVER_SECRETS", "").split() if s]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    serve(args.host, args.port, secrets=secrets, api_key=args.api_key, state=args.state)


if __name__ == "__main__":
    main()
