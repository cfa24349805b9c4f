"""test_metrics_promtool.py -- arrpcd's HTTP endpoints (--metrics-listen) against promtool: after
requests that succeed and fail (RPC error, auth error, invalid message), `promtool check metrics`
passes on /metrics; /healthz and /readyz answer 200, other paths 404, other methods 405."""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import promtext  # noqa: E402
from harness import Server, main  # noqa: E402

TRANSPORTS = ("tcp", "tls")  # ctest runs this file over both (harness.py)

SECRET = "promtool-secret"
WAIT = 10.0  # seconds for counts and readiness to show


class ServerMetricsPromtool(unittest.TestCase):
    def setUp(self):
        self.server = Server("--metrics-listen", "127.0.0.1:0", "--workers", "2",
                             secret=SECRET).start()
        m = re.search(r"master: metrics on http://127\.0\.0\.1:(\d+)/metrics", self.server.log())
        self.assertIsNotNone(m, self.server.log())
        self.url = "http://127.0.0.1:%s" % m.group(1)

    def tearDown(self):
        self.server.stop()

    def errors(self, text):
        """{reason: count} of arrpc_server_errors_total, summed over label sets."""
        out = {}
        for (name, labels), value in promtext.parse(text).items():
            if name == "arrpc_server_errors_total":
                reason = dict(labels)["reason"]
                out[reason] = out.get(reason, 0) + value
        return out

    def scrape_until(self, done):
        """The /metrics text once done(text) holds, or the last one after WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while True:
            status, text = promtext.http(self.url + "/metrics")
            self.assertEqual(status, 200)
            if done(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def make_traffic(self):
        with self.server.connect(secret=SECRET) as c:
            for i in range(5):
                self.assertEqual(c.call({"echo": i}), i)
            self.assertTrue(c.call({"fail": "boom"}).endswith("boom"))
        with self.server.connect() as c:  # unsigned: refused
            self.assertIn("AuthException", c.call({"echo": 1}))
        with self.server.connect(secret=SECRET) as c:
            c.send_raw(b"\xc1")  # never valid MessagePack: answered with an error, then closed
            c.replies_until_close()

    def test_promtool_passes(self):
        status, text = promtext.http(self.url + "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(promtext.check(text), (0, ""), text)  # before any request
        self.make_traffic()
        text = self.scrape_until(lambda t: {"rpc", "auth", "invalid_message"} <= set(self.errors(t)))
        self.assertTrue({"rpc", "auth", "invalid_message"} <= set(self.errors(text)), text)
        samples = promtext.parse(text)
        self.assertTrue(any(n == "arrpc_server_req_seconds_count" for n, _ in samples), text)
        self.assertEqual(promtext.check(text), (0, ""), text)

    def test_http_endpoints(self):
        self.assertEqual(promtext.http(self.url + "/healthz"), (200, "ok\n"))
        deadline = time.monotonic() + WAIT
        while promtext.http(self.url + "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(promtext.http(self.url + "/readyz")[0], 200)
        self.assertEqual(promtext.http(self.url + "/nope")[0], 404)
        self.assertEqual(promtext.http(self.url + "/")[0], 404)
        self.assertEqual(promtext.http(self.url + "/metrics", "POST")[0], 405)
        self.assertEqual(promtext.http(self.url + "/healthz", "POST")[0], 405)


if __name__ == "__main__":
    main()
