"""A tiny HTTP server for tests that need a wgrest that misbehaves on purpose (errors, hangs, garbage).

``ScriptedHTTP(answer)`` listens on 127.0.0.1 (a free port) and answers every request
with ``answer(request) -> (status, headers, body bytes)``; ``request`` has ``method``,
``path``, ``query`` (parsed), ``page`` (the ``page`` query value, 0 by default) and
``headers``. Every request is kept in ``requests``, and every Authorization header
received in ``tokens``. Use it as a context manager, or call ``close()``.
"""
from __future__ import annotations

import contextlib
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON = {"Content-Type": "application/json"}


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict

    @property
    def page(self) -> int:
        return int(self.query.get("page", ["0"])[0])


class ScriptedHTTP:
    def __init__(self, answer):
        self.requests: list[Request] = []
        self.tokens: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def handle_any(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urllib.parse.urlsplit(self.path)
                request = Request(self.command, url.path, urllib.parse.parse_qs(url.query), dict(self.headers))
                outer.requests.append(request)
                if self.headers.get("Authorization"):
                    outer.tokens.append(self.headers["Authorization"])
                status, headers, body = answer(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have timed out and gone
                    self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ScriptedHTTP:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
