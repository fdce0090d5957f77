"""The live picture of an LSP server's sliding windows: `python -m lsp server --web PORT`.

    view = WindowView(server, port=8080)   # serves http://127.0.0.1:8080/
    view.url
    view.close()

The page (lsp/web/index.html, page.js, style.css: plain HTML, CSS and JavaScript, nothing
fetched from elsewhere) polls `GET /windows` every 200 ms and draws, for each connection, its
send window as a row of cells (acknowledged, in flight with its current backoff and the epochs
it has waited since its last transmission, pending outside the window), the counts (sent,
acknowledged, unacknowledged, pending, retransmissions), the receive side (next expected
number, out-of-order messages buffered) and the epochs since the client was last heard against
the epoch limit. A connection that leaves the table (lost, or closed and drained) stays on
the page, greyed, for a few seconds. So the course's rules can be watched at work, say with
`--rdrop 20 --wdrop 20 --wsize 4 --maxunacked 4 --maxbackoff 4`.

HTTP endpoints (bad requests get a 4xx and a JSON {"error": "one line"}):
    GET /  /page.js  /style.css     the page
    GET /windows                    the server now: lsp.server.Server.picture() plus
                                    "epoch_millis" (wall clock) and "title"; 503 once the
                                    server has closed
Nothing is POSTed: the page only looks.

Threads (all end in close()):
    lsp-web/http     the HTTP server's accept loop; one short-lived thread per request, which
                     asks the server's loop for its picture (Server.picture, a channel round
                     trip) and answers it; close joins them.
close() is idempotent and thread-safe; it does not close the LSP server.
"""

from __future__ import annotations

import json
import os
import time

import csp
from csp.web import BadRequest, Routes, WebServer
from lsp.errors import LSPError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
STATIC_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
                "/index.html": ("index.html", "text/html; charset=utf-8"),
                "/page.js": ("page.js", "text/javascript; charset=utf-8"),
                "/style.css": ("style.css", "text/css; charset=utf-8")}


def windows_document(picture: dict, epoch_millis: int) -> bytes:
    """The body of GET /windows: the server's picture with the wall clock and a title."""
    document = dict(picture)
    document["epoch_millis"] = epoch_millis
    document["title"] = f"LSP server on UDP port {picture['port']}: sliding windows, live"
    return json.dumps(document).encode()


class WindowView:
    """Serves the page for `server` (an lsp Server, or anything with `picture()`). Starts at
    once; OSError if the port is taken. close() is idempotent and thread-safe."""

    def __init__(self, server, port: int = 0, host: str = "127.0.0.1") -> None:
        self._server = server
        self._life = csp.Lifecycle()
        self._http_server = WebServer((host, port), Routes(STATIC_DIR, STATIC_FILES, self._get),
                                      "lsp.web")
        self.port = self._http_server.port
        self.url = f"http://{host}:{self.port}/"

    def close(self) -> None:
        """Stop serving; returns once every request thread is gone."""
        self._life.close_once(self._http_server.stop)


    def _get(self, path: str, query: str) -> tuple[int, str, bytes]:
        if path != "/windows":
            raise BadRequest(404, f"no such page: GET {path}")
        if query:
            raise BadRequest(400, f"/windows takes no query, not {query!r}")
        try:
            picture = self._server.picture()
        except LSPError as exc:
            raise BadRequest(503, f"the LSP server is not answering: {exc}") from None
        return 200, "application/json", windows_document(picture, int(time.time() * 1000))
