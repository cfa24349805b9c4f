"""Server metrics: exact counts, never going backwards across crashes, timeout kills, reloads and
a binary upgrade; a real Prometheus scraping the master; a hostile HTTP client.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import msgpack

import harness
from harness import Server
from test_master import WAIT_S, alive, children, kill_quietly, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SERIES = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def fetch(port, path="/metrics", method="GET", host="127.0.0.1"):
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metrics_port(server):
    m = wait_until(lambda: re.search(r"metrics on http://[^:]+:(\d+)/", server.log()))
    return int(m.group(1))


def scrape(port, host="127.0.0.1"):
    """{(name, frozenset(labels)): value} of one scrape."""
    status, text = fetch(port, host=host)
    assert status == 200, status
    out = {}
    for line in text.splitlines():
        m = SERIES.match(line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def total(sample, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in sample.items() if n == name and want <= set(ls))


class MetricsCase(unittest.TestCase):
    def start(self, *args, **kw):
        server = Server("--metrics-listen", "127.0.0.1:0", *args, **kw).start()
        self.addCleanup(server.stop)
        return server, metrics_port(server)

    def send(self, server, count, conns=4):
        """count echo requests (the ints 0..count-1) over a few connections."""
        cs = [server.connect() for _ in range(conns)]
        for i in range(count):
            self.assertEqual(cs[i % conns].call(i), i)
        for c in cs:
            c.close()


class CountTest(MetricsCase):
    def test_counts_equal_what_was_sent(self):
        server, port = self.start("--workers", "2")
        self.send(server, 300)
        with server.connect() as c:
            for _ in range(7):
                c.call({"fail": "no"})
        s = scrape(port)
        self.assertEqual(total(s, "arrpc_server_req_seconds_count"), 307)
        self.assertEqual(total(s, "arrpc_server_req_bytes_count"), 307)
        # echo requests of ints 0..299 are 1 byte (0..127), 2 bytes (128..255) or 3 bytes
        fail_bytes = 7 * len(b"\x81\xa4fail\xa2no")
        expect_bytes = 128 * 1 + 128 * 2 + 44 * 3 + fail_bytes
        self.assertEqual(total(s, "arrpc_server_req_bytes_sum"), expect_bytes)
        self.assertEqual(total(s, "arrpc_server_errors_total", reason="rpc"), 7)
        self.assertEqual(total(s, "arrpc_server_req_seconds_bucket", le="+Inf"), 307)
        self.assertEqual(total(s, "arrpc_server_req_seconds_count", remote_address="127.0.0.1",
                               signed_payload="False", tls="False",
                               handler_func="arrpc_handler"), 307)

    def test_pipelined_requests_are_all_timed(self):
        """Pipelined fast requests may be timed in groups (docs/metrics.md): every request still
        lands in the histogram, the fast ones in its first bucket, a slow one in its own."""
        server, port = self.start("--workers", "1")
        fast = b"".join(msgpack.packb(i) for i in range(100))
        with server.connect() as c:
            c.send_raw(fast + msgpack.packb({"sleep": 0.3}) + fast + fast)
            for want in [*range(100), "slept", *range(100), *range(100)]:
                self.assertEqual(c.recv(), want)
        s = scrape(port)
        self.assertEqual(total(s, "arrpc_server_req_seconds_count"), 301)
        self.assertEqual(total(s, "arrpc_server_req_seconds_bucket", le="+Inf"), 301)
        self.assertEqual(total(s, "arrpc_server_req_seconds_bucket", le="0.25"), 300)
        self.assertEqual(total(s, "arrpc_server_req_seconds_bucket", le="0.5"), 301)
        self.assertGreaterEqual(total(s, "arrpc_server_req_seconds_sum"), 0.3)

    def test_auth_errors_and_signed_payload_label(self):
        server, port = self.start("--workers", "1", secret="s3cret")
        with server.connect(secret="s3cret") as good, server.connect() as bad:
            for i in range(5):
                self.assertEqual(good.call(i), i)
            for _ in range(3):
                self.assertEqual(bad.call(1), harness.AUTH_ERROR)
        s = scrape(port)
        self.assertEqual(total(s, "arrpc_server_req_seconds_count", signed_payload="True"), 5)
        self.assertEqual(total(s, "arrpc_server_errors_total", reason="auth",
                               signed_payload="False"), 3)

    def test_invalid_stream_counted_by_reason(self):
        server, port = self.start("--workers", "1", "--max-message", "1024")
        for data, reason in ((b"\xc1", "invalid_message"), (b"\xdd\xff\xff\xff\xff", "too_large"),
                             (b"\x91" * 200, "too_deep")):
            with server.connect() as c:
                c.send_raw(data)
                self.assertTrue(c.recv().startswith(harness.RPC_PREFIX))
        s = scrape(port)
        for reason in ("invalid_message", "too_large", "too_deep"):
            self.assertEqual(total(s, "arrpc_server_errors_total", reason=reason), 1, reason)

    def test_gauges_and_own_metrics(self):
        server, port = self.start("--workers", "2")
        with server.connect() as a, server.connect() as b:
            a.call(1)
            b.call(2)
            s = scrape(port)
            self.assertEqual(total(s, "arrpc_server_connections"), 2)
        self.assertEqual(total(s, "arrpc_server_workers"), 2)
        self.assertEqual(total(s, "arrpc_server_build_info"), 1)
        self.assertGreater(total(s, "arrpc_server_start_time_seconds"), 1.6e9)


class MonotonicTest(MetricsCase):
    def assert_grows_exactly(self, port, before, sent):
        after = scrape(port)
        for name in ("arrpc_server_req_seconds_count", "arrpc_server_req_bytes_count"):
            self.assertEqual(total(after, name), total(before, name) + sent, name)
        return after

    def test_counts_survive_crash_timeout_kill_reloads_and_upgrade(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        pid_file = os.path.join(tmp, "pid")
        server, port = self.start("--workers", "2", "--handler-timeout", "1",
                                  "--pid-file", pid_file)
        self.send(server, 100)
        s = self.assert_grows_exactly(port, {}, 100)

        with server.connect() as c:  # a crash: its request is answered with an error, uncounted
            c.send({"crash": True})
            c.recv()
        self.assertTrue(wait_until(lambda: len(children(server.pid)) == 2))
        s = self.assert_grows_exactly(port, s, 0)
        self.send(server, 50)
        s = self.assert_grows_exactly(port, s, 50)

        with server.connect() as c:  # a stuck handler, killed by the master
            c.send({"sleep": 30})
            self.assertTrue(c.closed_by_server(timeout=WAIT_S))
        self.assertTrue(wait_until(lambda: total(scrape(port),
                                                 "arrpc_server_worker_restarts_total",
                                                 cause="timeout") == 1))
        s = self.assert_grows_exactly(port, s, 0)

        for _ in range(5):
            before = server.log().count("reload: generation")
            server.signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: server.log().count("reload: generation") > before))
            self.send(server, 20)
            s = self.assert_grows_exactly(port, s, 20)
        self.assertEqual(total(s, "arrpc_server_reloads_total"), 5)
        self.assertEqual(total(s, "arrpc_server_worker_restarts_total", cause="crash"), 1)

        masters = [server.pid]
        self.addCleanup(lambda: [kill_quietly(p) for p in masters])
        os.kill(server.pid, signal.SIGUSR2)

        def upgraded():
            try:
                with open(pid_file) as f:
                    pid = int(f.read())
            except (OSError, ValueError):
                return None
            return pid if pid != server.pid and not alive(server.pid) else None
        new_master = wait_until(upgraded)
        self.assertTrue(new_master, server.log())
        masters.append(new_master)
        s = self.assert_grows_exactly(port, s, 0)  # the new master serves the same socket
        self.send(server, 30)
        s = self.assert_grows_exactly(port, s, 30)
        self.assertEqual(total(s, "arrpc_server_reloads_total"), 5)
        self.assertEqual(total(s, "arrpc_server_workers"), 2)  # dead workers are not counted


class EndpointTest(MetricsCase):
    def test_health_readiness_and_errors(self):
        server, port = self.start("--workers", "2")
        self.assertEqual(fetch(port, "/healthz")[0], 200)
        self.assertEqual(fetch(port, "/readyz")[0], 200)
        self.assertEqual(fetch(port, "/nope")[0], 404)
        self.assertEqual(fetch(port, "/metrics", method="POST")[0], 405)

    def test_pre_drain_fails_readiness_but_keeps_serving(self):
        server, port = self.start("--workers", "2", "--pre-drain", "2")
        with server.connect() as c:
            server.signal(signal.SIGTERM)
            self.assertTrue(wait_until(lambda: fetch(port, "/readyz")[0] == 503))
            self.assertEqual(fetch(port, "/healthz")[0], 200)
            self.assertEqual(c.call("still served"), "still served")
        self.assertEqual(server.wait(timeout=WAIT_S), 0)

    def test_silent_http_clients_do_not_stall_the_master(self):
        server, port = self.start("--workers", "2")
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        for s in silent[:4]:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
        self.addCleanup(lambda: [s.close() for s in silent])
        before = server.log().count("reload: generation")
        server.signal(signal.SIGHUP)  # the master's loop still acts on signals
        self.assertTrue(wait_until(lambda: server.log().count("reload: generation") > before))
        self.assertEqual(fetch(port, "/healthz")[0], 200)
        with server.connect() as c:
            self.assertEqual(c.call(1), 1)


class PrometheusTest(MetricsCase):
    def test_real_prometheus_scrapes_the_master(self):
        self.assertTrue(os.path.exists(PROMETHEUS), "install Debian's prometheus package")
        server, port = self.start("--workers", "2")
        self.send(server, 42)
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        with socket.socket() as s:  # a free port for Prometheus's own web server
            s.bind(("127.0.0.1", 0))
            web_port = s.getsockname()[1]
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s}\n"
                    "scrape_configs:\n"
                    "  - job_name: arrpc\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % port)
        prom = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + tmp + "/data",
             "--web.listen-address=127.0.0.1:%d" % web_port],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (prom.kill(), prom.wait()))
        query = ("/api/v1/query?query=sum(arrpc_server_req_seconds_count%7Bjob%3D%22arrpc%22%7D)")

        def value():
            try:
                status, body = fetch(web_port, query)
            except OSError:
                return None
            m = re.search(r'"value":\[[0-9.]+,"([0-9.]+)"\]', body)
            return float(m.group(1)) if status == 200 and m else None
        self.assertEqual(wait_until(lambda: value() == 42, timeout=30, step=0.5), True)


if __name__ == "__main__":
    harness.main()
