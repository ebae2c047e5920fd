"""A tiny HKP keyserver on 127.0.0.1 for the tests (security notes, Appendix B).

    with KeyServer() as server:
        server.answers["0123...CDEF"] = armored_key   # what to send for that fingerprint
        server.stalled.add("89AB...0123")             # accept, then never answer
        ... keyserver = server.url ...
        server.requests                               # fingerprints asked for, in order

It serves GET /pks/lookup?op=get&search=0x<FPR> from a dict; unknown keys get
404 as real keyservers answer. Stalled requests are held open until stop(),
which releases them, so no thread outlives the test.
"""

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Set


class KeyServer:
    def __init__(self):
        self.answers: Dict[str, bytes] = {}
        self.stalled: Set[str] = set()
        self.requests: List[str] = []
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return "hkp://127.0.0.1:%d" % self._server.server_address[1]

    def start(self) -> "KeyServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def __enter__(self) -> "KeyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):      # keep the test output clean
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                if url.path != "/pks/lookup" or query.get("op") != ["get"]:
                    self.send_error(501)
                    return
                wanted = query.get("search", [""])[0].upper()
                wanted = wanted[2:] if wanted.startswith("0X") else wanted
                server.requests.append(wanted)
                if wanted in server.stalled:
                    server._release.wait(600)  # accept, never answer (until stop())
                    self.close_connection = True
                    return
                data = server.answers.get(wanted)
                if data is None:
                    self.send_error(404, "No keys found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pgp-keys")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
