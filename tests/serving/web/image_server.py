"""A local image host for poster tests: serves a small PNG at /img/<name>.png, 404 elsewhere,
and counts requests (so a test can see a source was or was not asked)."""

from __future__ import annotations

import io
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from PIL import Image

from tests.stub_server import StubHTTPServer


def png(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (60, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


class ImageServer(StubHTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self.hits: Counter[str] = Counter()
        self.image = png()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.hits[self.path] += 1
                if self.path.startswith("/img/") and self.path.endswith(".png"):
                    body, status, ctype = server.image, 200, "image/png"
                elif self.path.startswith("/broken/"):
                    body, status, ctype = b"<html>not an image</html>", 200, "image/png"
                else:
                    body, status, ctype = b"not found", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler
