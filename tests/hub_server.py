"""A local HTTP server standing in for the Hugging Face Hub (HF_ENDPOINT) that refuses every token,
as huggingface.co does a revoked one: 401 to every request, counted in `server.requests`."""
from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RefusingHub(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        self.server.requests += 1
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, *args):
        pass


@contextmanager
def refusing_hub() -> Iterator[http.server.ThreadingHTTPServer]:
    """`with refusing_hub() as hub:` HF_ENDPOINT=http://127.0.0.1:{hub.server_port} refuses every token."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingHub)
    server.requests = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
