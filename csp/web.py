"""The HTTP plumbing of the small live web views (raft.web, lsp.web): a threaded server whose
request threads are joined at close, static files, JSON answers and 4xx errors.

    routes = Routes(static_dir, {"/": ("index.html", "text/html; charset=utf-8")},
                    get=lambda path, query: ..., post=lambda path, query, body, ctype: ...)
    server = WebServer(("127.0.0.1", 0), routes, name="raft.web")   # serving from here on
    server.port
    server.stop()

`get(path, query)` and `post(path, query, body, content_type)` return `(status, content_type,
body bytes)` or raise BadRequest(status, message): every BadRequest is answered with its status
and the JSON `{"error": message}`. A GET of a path in the static table answers that file;
other methods are refused with a 405. A request body is at most MAX_BODY_BYTES.

Threads: `<name>/http` runs the accept loop (dots in `name` become dashes: `raft-web/http`);
each request gets a short-lived thread. stop() ends the loop and joins them all (no test sees
one outlive its view).
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import urllib.parse

from csp.goroutine import go

MAX_BODY_BYTES = 4096


class BadRequest(Exception):
    """A request an endpoint does not take; carries the HTTP status and the one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_answer(document) -> tuple[int, str, bytes]:
    """A 200 with `document` as JSON."""
    return 200, "application/json", json.dumps(document).encode()


class Routes:
    """What a WebServer answers: static files from `static_dir` (path -> (file name, content
    type)), then `get` for other GETs and `post` for POSTs (None: 405)."""

    def __init__(self, static_dir: str, static_files: dict, get=None, post=None,
                 methods_hint: str = "GET the page and its data") -> None:
        self.static_dir = static_dir
        self.static_files = static_files
        self.get = get
        self.post = post
        self.methods_hint = methods_hint


class WebServer(http.server.ThreadingHTTPServer):
    """Serves `routes` on `address` (port 0: a free one, then in `.port`) from its creation
    until stop(). OSError if the port is taken. `name` labels log lines (logger `name`), the
    Server header and the thread."""

    daemon_threads = False    # request threads are joined by server_close()
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], routes: Routes, name: str) -> None:
        super().__init__(address, _handler_for(routes, name))
        self.port = self.server_address[1]
        self._accepting = go(self.serve_forever, 0.1, name=f"{name.replace('.', '-')}/http")

    def stop(self) -> None:
        """Stop accepting and wait for every request in progress; call once."""
        self.shutdown()        # the accept loop ends
        self.server_close()    # joins the request threads
        self._accepting.join()


def _handler_for(routes: Routes, name: str):
    log = logging.getLogger(name)

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = name

        def log_message(self, format, *args) -> None:   # noqa: A002 - the base's name
            log.debug("%s %s", self.address_string(), format % args)

        def do_GET(self) -> None:
            self._answer(self._get)

        def do_POST(self) -> None:
            self._answer(self._post)

        def _refuse_method(self) -> None:
            self._answer(self._not_allowed)

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

        def _not_allowed(self) -> tuple[int, str, bytes]:
            raise BadRequest(405, f"{self.command} is not taken here: {routes.methods_hint}")

        def _answer(self, handle) -> None:
            try:
                status, content_type, body = handle()
            except BadRequest as exc:
                status, content_type = exc.status, "application/json"
                body = json.dumps({"error": str(exc)}).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _get(self) -> tuple[int, str, bytes]:
            url = urllib.parse.urlsplit(self.path)
            if url.path in routes.static_files:
                file_name, content_type = routes.static_files[url.path]
                with open(os.path.join(routes.static_dir, file_name), "rb") as static:
                    return 200, content_type, static.read()
            if routes.get is None:
                raise BadRequest(404, f"no such page: GET {url.path}")
            return routes.get(url.path, url.query)

        def _post(self) -> tuple[int, str, bytes]:
            if routes.post is None:
                self._not_allowed()
            url = urllib.parse.urlsplit(self.path)
            body = self._body()
            return routes.post(url.path, url.query, body, self.headers.get("Content-Type", ""))

        def _body(self) -> bytes:
            length_text = self.headers.get("Content-Length", "0")
            if not length_text.isdigit():
                raise BadRequest(400, f"bad Content-Length {length_text!r}")
            length = int(length_text)
            if length > MAX_BODY_BYTES:
                raise BadRequest(413, f"a request body is at most {MAX_BODY_BYTES} bytes")
            return self.rfile.read(length)

    return Handler
