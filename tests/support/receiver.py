"""A real HTTP receiver on loopback that records every request and answers as scripted.

Used by the tests and the benchmark. Each response goes out in one write, so HTTP/1.1
keep-alive does not stall on Nagle + delayed ACK (the pitfall in docs/benchmarks.md, "The floor").
"""

import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    answered: int | None = None  # the status it was answered with

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def action(self) -> str:
        return self.json["action"]

    @property
    def members(self) -> list[dict]:
        return self.json["parameters"]["members"]

    @property
    def page_info(self) -> dict:
        return self.json["parameters"]["page_info"]

    @property
    def session_id(self) -> str:
        return self.json["parameters"]["mixpanel_session_id"]

    @property
    def form_users(self) -> list[dict]:
        """A user message's batch: the form field `users`, a JSON list (docs/contract.md, "Legacy user messages")."""
        fields = parse_qs(self.body.decode(), strict_parsing=True)
        assert list(fields) == ["users"] and len(fields["users"]) == 1, fields.keys()
        return json.loads(fields["users"][0])


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict | None = None  # None: the contract's success echo
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (timeouts)


Responder = Callable[[RecordedRequest], Reply]


class LoopbackReceiver:
    def __init__(self, record_bodies: bool = True):
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self.record_bodies = record_bodies
        self.count = 0
        self._replies: queue.Queue[Reply] = queue.Queue()
        self._responder: Responder | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval lets each test's receiver shut down in milliseconds.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # --- scripting -------------------------------------------------------------------
    def reply(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then the default success."""
        for item in replies:
            self._replies.put(item)

    def respond_with(self, responder: Responder | None) -> None:
        """Decide each answer with a function (used after the scripted replies run out)."""
        self._responder = responder

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> "LoopbackReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self.count = 0

    # --- internals -------------------------------------------------------------------
    def _next_reply(self, request: RecordedRequest) -> Reply:
        try:
            return self._replies.get_nowait()
        except queue.Empty:
            pass
        if self._responder is not None:
            return self._responder(request)
        return Reply()

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with receiver._lock:
                    receiver.connections += 1

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                request = RecordedRequest(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body if receiver.record_bodies else b"",
                )
                with receiver._lock:
                    receiver.count += 1
                    if receiver.record_bodies:
                        receiver.requests.append(request)
                reply = receiver._next_reply(
                    request if receiver.record_bodies else RecordedRequest("POST", self.path, {}, body)
                )
                request.answered = reply.status
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body
                if payload is None:
                    try:
                        action = json.loads(body).get("action")
                    except (ValueError, AttributeError):
                        action = None
                    payload = {"action": action, "status": "success"}
                if isinstance(payload, dict):
                    payload = json.dumps(payload)
                if isinstance(payload, str):
                    payload = payload.encode()
                head = [f"HTTP/1.1 {reply.status} {_reason(reply.status)}", f"Content-Length: {len(payload)}"]
                headers = {"Content-Type": "application/json", **reply.headers}
                head += [f"{name}: {value}" for name, value in headers.items()]
                try:
                    self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)  # one write
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class CohortStore:
    """A receiver written as in the wild, to script with `LoopbackReceiver.respond_with`.

    It keeps one copy per cohort id, and: `members` only adds to that copy (never replaces
    it); `add_members`/`remove_members` for a cohort it does not know answer 404 in the
    contract's failure shape, on purpose, so the sender pauses; distinct ids lose their
    surrounding whitespace. `forget()` drops every copy (a receiver that lost its data).
    """

    def __init__(self):
        self.cohorts: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        payload = json.loads(request.body)
        action, parameters = payload["action"], payload["parameters"]
        cohort_id = parameters["mixpanel_cohort_id"]
        ids = {member["mixpanel_distinct_id"].strip() for member in parameters["members"]}
        with self._lock:
            copy = self.cohorts.get(cohort_id)
            if action == "members":
                self.cohorts.setdefault(cohort_id, set()).update(ids)
            elif copy is None:
                return Reply(404, {"action": action, "status": "failure",
                                   "error": {"message": f"unknown cohort {cohort_id}", "code": 404}})
            elif action == "add_members":
                copy.update(ids)
            else:
                copy.difference_update(ids)
        return Reply()

    def copy_of(self, cohort_id) -> set[str]:
        with self._lock:
            return set(self.cohorts.get(str(cohort_id), ()))

    def forget(self) -> None:
        with self._lock:
            self.cohorts.clear()
