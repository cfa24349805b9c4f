"""test_client_metrics.py -- the C client's arrpc_client_* metrics (through client_driver) against
arrpcd: after N sends, some failed (RPC error, auth error, timeout, connect failure), the rendered
counts are exactly N and the errors by reason exact; the served endpoint answers /metrics with
the same text, 404 and 405 otherwise, and stops with the client; promtool check metrics passes."""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import promtext  # noqa: E402
from harness import Server, main  # noqa: E402
from test_client import ClientError, Driver, packb  # noqa: E402

TRANSPORTS = ("tcp", "tls")  # ctest runs this file over both (harness.py)

SECRET = "client-metrics-secret"
TLS = "True" if harness.TRANSPORT == "tls" else "False"
QUICK_FAIL = ("--retries", 1, "--backoff", 0, "--connect-timeout", 2000)
REASONS = ("auth", "rpc", "invalid_message", "too_large", "too_deep", "invalid_reply",
           "connection_limit", "timeout", "tls_handshake", "connect", "closed", "io")


def labels(signed):
    return dict(promtext.local_labels(), remote_address="127.0.0.1", signed_payload=signed,
                tls=TLS)


def render(d):
    """The text of client_driver's `metrics` command (arrpc_client_metrics_render)."""
    answer = d.command("metrics")
    assert answer.startswith("ok "), answer
    return "".join(d.line() + "\n" for _ in range(int(answer.split()[1])))


class Workload:
    """Sends through a driver and keeps what the metrics must then show."""

    def __init__(self, driver):
        self.d = driver
        self.requests = 0
        self.bytes = 0
        self.errors = {}

    def _count(self, obj, error=None):
        self.requests += 1
        self.bytes += len(packb(obj))
        if error:
            self.errors[error] = self.errors.get(error, 0) + 1

    def send(self, obj, expect=None, reason=None):
        try:
            self.d.call(obj)
            assert expect is None, "expected %s" % expect
        except ClientError as e:
            assert e.name == expect, str(e)
        self._count(obj, reason)

    def batch(self, objs):
        self.d.batch(objs)
        for obj in objs:
            self._count(obj, "rpc" if "fail" in obj else None)

    def check(self, test, text, signed):
        s = promtext.parse(text)
        lab = labels(signed)
        test.assertEqual(promtext.value(s, "arrpc_client_req_seconds_count", **lab), self.requests)
        test.assertEqual(promtext.value(s, "arrpc_client_req_seconds_bucket", le="+Inf", **lab),
                         self.requests)
        test.assertEqual(promtext.value(s, "arrpc_client_req_bytes_count", **lab), self.requests)
        test.assertEqual(promtext.value(s, "arrpc_client_req_bytes_sum", **lab), self.bytes)
        for reason in REASONS:
            test.assertEqual(promtext.value(s, "arrpc_client_errors_total", reason=reason, **lab),
                             self.errors.get(reason), reason)
        for name, labelset in s:  # one label set only, and the 0.5.0 label names
            names = {k for k, _ in labelset} - {"le", "reason"}
            test.assertEqual(names, set(lab), name)
            test.assertEqual(dict(labelset)["signed_payload"], signed)
        return s


class ClientMetrics(unittest.TestCase):
    def setUp(self):
        self.server = Server(secret=SECRET).start()

    def tearDown(self):
        self.server.stop()

    def driver(self, *args, secret=SECRET):
        return Driver(self.server.port, *QUICK_FAIL, *args, secret=secret)

    def assert_promtool_passes(self, text):
        status, out = promtext.check(text)
        self.assertEqual((status, out), (0, ""), text)

    def test_counts_are_exact(self):
        with self.driver() as d:
            self.assertEqual(d.command("metrics-on"), "ok")
            fresh = render(d)
            self.assertNotIn("_count{", fresh)
            self.assert_promtool_passes(fresh)
            w = Workload(d)
            for i in range(3):
                w.send({"echo": i})
            for _ in range(2):
                w.send({"fail": "boom"}, "ERPC", "rpc")
            w.batch([{"echo": "a"}, {"fail": "in a batch"}, {"echo": "b"}])
            self.assertEqual(d.command("timeout 300"), "ok")
            w.send({"sleep": 1}, "ETIMEOUT", "timeout")
            self.assertEqual(d.command("timeout 0"), "ok")
            self.assertTrue(d.command("send c1").startswith("err EINVAL"))  # never sent: uncounted
            w.send({"echo": "after the timeout"})
            self.server.stop()
            w.send({"echo": "nobody listens"}, "ECONNECT", "connect")
            self.assertEqual(w.requests, 11)
            text = render(d)
            s = w.check(self, text, "True")
            lab = labels("True")
            self.assertGreaterEqual(promtext.value(s, "arrpc_client_req_seconds_sum", **lab), 0.3)
            self.assertLessEqual(promtext.value(s, "arrpc_client_req_seconds_bucket", le="0.25",
                                                **lab), 10)  # the timeout took 0.3 s or more
            self.assert_promtool_passes(text)

    def test_auth_errors(self):
        with self.driver(secret="not-the-secret") as d:
            self.assertEqual(d.command("metrics-on"), "ok")
            w = Workload(d)
            for i in range(3):
                w.send({"echo": i}, "EAUTH", "auth")
            w.check(self, render(d), "True")

    def test_unsigned_and_off_by_default(self):
        with Driver(self.server.port, *QUICK_FAIL) as d:  # no secret: the server refuses
            w = Workload(d)
            w.send({"echo": 1}, "EAUTH")
            self.assertNotIn("_count{", render(d))  # metrics are off by default
            self.assertEqual(d.command("metrics-on"), "ok")
            w = Workload(d)
            w.send({"echo": 1}, "EAUTH", "auth")
            w.check(self, render(d), "False")
            self.assertEqual(d.command("metrics-off"), "ok")
            self.assertTrue(d.command("send " + packb({"echo": 2}).hex()).startswith("err EAUTH"))
            w.check(self, render(d), "False")  # off: unchanged

    def test_served_endpoint(self):
        with self.driver() as d:
            answer = d.command("serve 127.0.0.1 0")
            self.assertTrue(answer.startswith("ok "), answer)
            port = int(answer.split()[1])
            self.assertGreater(port, 0)
            self.assertTrue(d.command("serve 127.0.0.1 0").startswith("err ESTATE"))
            w = Workload(d)  # serving turns counting on
            w.send({"echo": 1})
            w.send({"fail": "served"}, "ERPC", "rpc")
            url = "http://127.0.0.1:%d" % port
            status, served = promtext.http(url + "/metrics")
            self.assertEqual(status, 200)
            self.assertEqual(served, render(d))
            w.check(self, served, "True")
            self.assert_promtool_passes(served)
            self.assertEqual(promtext.http(url + "/nope")[0], 404)
            self.assertEqual(promtext.http(url + "/")[0], 404)
            self.assertEqual(promtext.http(url + "/metrics", "POST")[0], 405)
            self.assertEqual(promtext.http(url + "/metrics", "HEAD")[0], 200)
        # arrpc_client_free stopped the exporter: nothing listens on its port any more.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


if __name__ == "__main__":
    main()
