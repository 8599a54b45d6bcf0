"""conduitd's web pages over raw HTTP: every file of web/ is served at its name (and the chat at /,
the dashboard at /dashboard) byte for byte with its content type, revalidated by ETag (304); nothing
else is reachable (encoded or not, no path names a file outside the embedded set); the exact routes
of the server keep answering; /stats is /metrics as JSON; web.enabled = false removes all of it.

    /usr/bin/python3 test_web_routes.py --conduitd PATH
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "echo"))
sys.path.insert(0, os.path.join(HERE, "..", "ops"))
import conduitd  # noqa: E402
import opslib  # noqa: E402
from conduitd import Conduitd, RawWS, http_request  # noqa: E402
import unittest  # noqa: E402

WEB_DIR = os.path.abspath(os.path.join(HERE, "..", "..", "..", "web"))
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}


def web_files():
    out = {}
    for root, _, files in os.walk(WEB_DIR):
        for name in files:
            full = os.path.join(root, name)
            out[os.path.relpath(full, WEB_DIR).replace(os.sep, "/")] = open(full, "rb").read()
    return out


def get(port, path, extra="", method="GET"):
    req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n".encode()
    return http_request(port, req)


class WebRoutes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Conduitd(mode=None, sets={"api.key": "test-key"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_every_file_is_served_at_its_name_with_its_type(self):
        files = web_files()
        for needed in ("index.html", "dashboard.html", "conduit.js", "chat.js", "dashboard.js", "style.css"):
            self.assertIn(needed, files)
        for name, content in files.items():
            status, headers, body = get(self.server.port, "/" + name)
            self.assertEqual(status, 200, name)
            self.assertEqual(body, content, f"/{name} is not the file's bytes")
            self.assertEqual(headers["content-type"], TYPES[os.path.splitext(name)[1]], name)
            self.assertEqual(headers["cache-control"], "no-cache", name)
            self.assertEqual(headers["x-content-type-options"], "nosniff", name)
            self.assertRegex(headers["etag"], r'^"[0-9a-f]{16}"$', name)

    def test_short_names_of_the_two_pages(self):
        files = web_files()
        for path, name in (("/", "index.html"), ("/dashboard", "dashboard.html"), ("/?token=abc", "index.html")):
            status, headers, body = get(self.server.port, path)
            self.assertEqual((status, body), (200, files[name]), path)
            self.assertEqual(headers["content-type"], "text/html; charset=utf-8")

    def test_head_sends_the_headers_without_the_body(self):
        status, headers, body = get(self.server.port, "/conduit.js", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(int(headers["content-length"]), len(web_files()["conduit.js"]))
        self.assertEqual(body, b"")

    def test_a_current_copy_is_revalidated_with_304(self):
        _, headers, _ = get(self.server.port, "/conduit.js")
        etag = headers["etag"]
        for header in (etag, f"W/{etag}", f'"0000000000000000", {etag}', "*"):
            status, h, body = get(self.server.port, "/conduit.js", f"If-None-Match: {header}\r\n")
            self.assertEqual(status, 304, header)
            self.assertEqual(body, b"")
            self.assertNotIn("content-length", h, "a 304 must not carry the length of a body it does not have")
            self.assertEqual(h["etag"], etag)
            self.assertEqual(h["cache-control"], "no-cache")
            self.assertEqual(h["content-type"], "text/javascript; charset=utf-8")
        status, _, body = get(self.server.port, "/conduit.js", 'If-None-Match: "0000000000000000"\r\n')
        self.assertEqual(status, 200)
        self.assertEqual(body, web_files()["conduit.js"])

    def test_no_path_reaches_outside_the_embedded_files(self):
        before = opslib.scrape(self.server.port).get("conduit_handshake_failures_total", reason="not_found")
        attempts = ["/../CMakeLists.txt", "/web/../CMakeLists.txt", "/%2e%2e/CMakeLists.txt", "/%2E%2E%2FCMakeLists.txt",
                    "/..%2fCMakeLists.txt", "/..%5cCMakeLists.txt", "/conduit.js/../index.html", "//conduit.js",
                    "/./conduit.js", "/web/conduit.js", "/CONDUIT.JS", "/conduit.js%00", "/conduit%2ejs",
                    "/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/index.html/",
                    "/dashboard/", "/CMakeLists.txt", "/apps/conduitd/main.cpp", "/.git/config", "/web/"]
        for path in attempts:
            status, headers, body = get(self.server.port, path)
            self.assertEqual(status, 404, f"{path} answered {status}: {body[:80]!r}")
        # Refused by the route table itself: counted (and logged) like every unknown path.
        after = opslib.scrape(self.server.port).get("conduit_handshake_failures_total", reason="not_found")
        self.assertEqual(after - before, len(attempts))

    def test_other_methods_are_405(self):
        req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        status, headers, _ = http_request(self.server.port, req)
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET")

    def test_the_servers_own_routes_keep_answering(self):
        status, headers, body = get(self.server.port, "/healthz")
        self.assertEqual((status, body.strip()), (200, b"ok"))
        self.assertEqual(headers["cache-control"], "no-store")
        opslib.scrape(self.server.port)  # /metrics: Prometheus text
        status, _, body = get(self.server.port, "/api/channels", "Authorization: apikey test-key\r\n")
        self.assertEqual(status, 200, body)
        self.assertIn("channels", json.loads(body))

    def test_stats_is_the_metrics_as_json(self):
        ws = RawWS(self.server.port)  # one open connection, seen by both
        try:
            opslib.wait_metric(self.server.port, "conduit_connections_active", lambda v: v == 1)
            status, headers, body = get(self.server.port, "/stats")
            metrics = opslib.scrape(self.server.port)
        finally:
            ws.sock.close()
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["cache-control"], "no-store")
        stats = json.loads(body)["metrics"]
        self.assertEqual(stats["conduit_connections_active"], [{"labels": {}, "value": 1}])
        for family in ("conduit_messages_received_total", "conduit_messages_sent_total", "conduit_bytes_received_total",
                       "conduit_bytes_sent_total", "conduit_subscriptions_active", "conduit_channels_active",
                       "conduit_history_bytes", "conduit_handshake_failures_total", "conduit_closes_total",
                       "conduit_errors_total", "conduit_messages_dropped_total"):
            self.assertIn(family, stats)
        # Every series of /metrics is in /stats with its labels (counters only grow between the two reads).
        for (name, labels), value in metrics.samples.items():
            series = [s for s in stats.get(name, []) if s["labels"] == dict(labels)]
            self.assertEqual(len(series), 1, f"{name}{dict(labels)} missing from /stats")
            if metrics.types.get(name) == "counter":
                self.assertLessEqual(series[0]["value"], value, name)
        reasons = {s["labels"]["reason"] for s in stats["conduit_handshake_failures_total"]}
        self.assertIn("not_found", reasons)


class WebDisabled(unittest.TestCase):
    def test_web_enabled_false_serves_no_page(self):
        with Conduitd(mode=None, sets={"web.enabled": "false"}) as server:
            for path in ("/", "/dashboard", "/conduit.js", "/index.html", "/stats"):
                status, _, _ = get(server.port, path)
                self.assertEqual(status, 404, path)
            status, _, _ = get(server.port, "/healthz")
            self.assertEqual(status, 200)


if __name__ == "__main__":
    conduitd.main()
