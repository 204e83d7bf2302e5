import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from sdk_ingest.models import IngestKey
from sdk_ingest.services import ingest_key_create
from tests.factories import ProjectFactory


class FlakyProxy:
    """A loopback proxy in front of the live server: the first `failures` requests are passed on
    (so the server stores them) and answered 503, as if the answer were lost; the SDK retries."""

    def __init__(self, upstream: str, failures: int = 1):
        self.upstream, self.failures, self.requests = upstream, failures, 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() not in ("host", "content-length", "connection")}
                try:
                    with urlopen(Request(proxy.upstream + self.path, data=body, headers=headers)) as answer:
                        status, payload, content_type = answer.status, answer.read(), answer.headers["Content-Type"]
                except HTTPError as error:
                    status, payload, content_type = error.code, error.read(), error.headers["Content-Type"]
                proxy.requests += 1
                if proxy.requests <= proxy.failures:
                    status, payload, content_type = 503, b"lost", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", content_type or "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky_proxy(live_server):
    with FlakyProxy(live_server.url) as proxy:
        yield proxy


@pytest.fixture
def ingest_project(db):
    return ProjectFactory(name="Acme")


@pytest.fixture
def write_key(ingest_project) -> str:
    return ingest_key_create(project=ingest_project, kind=IngestKey.Kind.SEGMENT_WRITE_KEY, name="web")[1]


@pytest.fixture
def mixpanel_token(ingest_project) -> str:
    return ingest_key_create(project=ingest_project, kind=IngestKey.Kind.MIXPANEL_TOKEN, name="web")[1]


@pytest.fixture
def mixpanel_secret(ingest_project) -> str:
    return ingest_key_create(project=ingest_project, kind=IngestKey.Kind.MIXPANEL_SECRET, name="server")[1]
