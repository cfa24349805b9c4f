"""test_haproxy_rolling.py -- a rolling restart behind HAProxy loses no request.

Three arrpcd backends (127.0.0.2, 127.0.0.3, 127.0.0.4, each with its metrics port on its own
host) behind HAProxy on 127.0.0.1, configured from contrib/haproxy/arrpc.cfg (test_deploy's
haproxy_config: the same settings, checks every CHECK_INTER instead of 2 s). Under load from
arrpc-bench --idempotent --verify, each backend in turn gets SIGTERM (--pre-drain turns its
/readyz to 503, HAProxy takes it out), exits, and starts again on the same address and ports:
no request may fail. A client bound to 127.0.0.5 shows that the PROXY header carries its
address to the backend's metrics.

Nothing here asserts a time; every wait is bounded. ARRPC_TEST_VERBOSE=1 prints the figures
docs/deploy.md quotes (sent, failed, resent, time to be marked down, connections per backend).
"""
import json
import os
import signal
import subprocess
import threading
import time
import unittest

import harness
from harness import Server
from test_deploy import HAPROXY, free_port, haproxy_config, start_haproxy
from test_master import wait_until
from test_metrics import fetch, metrics_port, scrape

BENCH = os.path.join(harness.BIN_DIR, "arrpc-bench")
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
CLIENT_HOST = "127.0.0.5"
BACKEND_ARGS = ("--workers", "2", "--proxy-protocol", "127.0.0.0/8", "--pre-drain", "1",
                "--drain-timeout", "5")
BENCH_ARGS = ("--json", "-q", "--idempotent", "--verify", "-c", "6", "-P", "2",
              "--rate", "1000")  # requests a second in all: load, not saturation
BENCH_MAX_S = 120  # its -d: a bound; the test interrupts it once every backend is back
SETTLE_S = 1.0     # load before the first restart and after the last one
AGE_S = 2          # --max-connection-age and its jitter, in the aging test
AGE_JITTER_S = 1
WAIT_S = 20        # bound on each wait: a backend's exit, /readyz, HAProxy's log line
VERBOSE = os.environ.get("ARRPC_TEST_VERBOSE")


class HAProxyLog:
    """HAProxy's output (its log and its warnings), each line with the monotonic time it
    arrived, read by a thread so that a test can ask when a server went down or up."""

    def __init__(self, stream):
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream):
        with stream:  # ends when HAProxy exits
            for raw in stream:
                with self.cond:
                    self.lines.append((time.monotonic(), raw.decode(errors="replace")))
                    self.cond.notify_all()

    def wait_for(self, text, after):
        """The time of the first line containing text that came at or after `after`, or None
        after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        with self.cond:
            while True:
                for at, line in self.lines:
                    if at >= after and text in line:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def text(self):
        with self.cond:
            return "".join(line for _, line in self.lines)


class Backend:
    """One arrpcd host: its address, arrpc port and metrics port stay the same over restarts."""

    def __init__(self, test, name, host, extra_args=()):
        self.test, self.name, self.host = test, name, host
        self.args = BACKEND_ARGS + tuple(extra_args)
        self.server = self._start(host + ":0", host + ":0")
        self.port = self.server.port
        self.metrics_port = metrics_port(self.server)

    def _start(self, listen, metrics_listen):
        server = Server(*self.args, "--metrics-listen", metrics_listen, listen=listen,
                        tls=False).start()
        self.test.addCleanup(server.stop)
        return server

    def restart(self):
        self.server = self._start("%s:%d" % (self.host, self.port),
                                  "%s:%d" % (self.host, self.metrics_port))

    def ready(self):
        try:
            return fetch(self.metrics_port, "/readyz", host=self.host)[0] == 200
        except OSError:  # not listening yet
            return False

    def series(self, family):
        """{frozenset(labels): value} of one metric family."""
        return {labels: v for (name, labels), v in
                scrape(self.metrics_port, host=self.host).items() if name == family}

    def connections(self):
        return int(sum(self.series("arrpc_server_connections").values()))


@unittest.skipUnless(os.path.exists(HAPROXY), "haproxy is not installed (tools/install-deps.sh)")
class RollingRestart(unittest.TestCase):
    def start_cluster(self, *extra_args):
        """The three backends (BACKEND_ARGS plus extra_args) and HAProxy in front of them."""
        self.backends = [Backend(self, "arrpc%d" % (i + 1), h, extra_args)
                         for i, h in enumerate(HOSTS)]
        self.listen = free_port()
        cfg = haproxy_config(self, self.listen, [(b.name, b.host, b.port, b.metrics_port)
                                                 for b in self.backends])
        proxy = start_haproxy(self, cfg, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.log = HAProxyLog(proxy.stdout)
        answered = wait_until(self.answered_through_haproxy, timeout=WAIT_S)
        self.assertTrue(answered, "no answer through haproxy:\n" + self.log.text())

    def answered_through_haproxy(self, source=None):
        try:
            with harness.Conn(self.listen, timeout=5, source=source) as c:
                return c.call({"echo": 1}) == 1
        except (OSError, EOFError):
            return False

    def test_client_address_reaches_the_backends_metrics(self):
        self.start_cluster()
        self.assertTrue(self.answered_through_haproxy(source=CLIENT_HOST))
        by_address = {}
        for b in self.backends:
            for labels, count in b.series("arrpc_server_req_seconds_count").items():
                address = dict(labels)["remote_address"]
                by_address[address] = by_address.get(address, 0) + count
        # Without the header, the request would count under HAProxy's address, 127.0.0.1.
        self.assertEqual(by_address.get(CLIENT_HOST), 1, by_address)

    def restart(self, backend):
        """SIGTERM, exit, start again, /readyz 200, HAProxy marks it up. Returns the seconds
        from SIGTERM to HAProxy marking it down and from then to marking it up again (None
        when HAProxy logged no DOWN line)."""
        signalled = time.monotonic()
        backend.server.signal(signal.SIGTERM)
        self.assertEqual(backend.server.wait(timeout=WAIT_S), 0, backend.server.log())
        down = self.log.wait_for("Server arrpcd/%s is DOWN" % backend.name, signalled)
        started = time.monotonic()
        backend.restart()
        self.assertTrue(wait_until(backend.ready, timeout=WAIT_S), backend.server.log())
        up = self.log.wait_for("Server arrpcd/%s is UP" % backend.name, started)
        self.assertIsNotNone(up, "HAProxy did not take %s back:\n%s" % (backend.name,
                                                                          self.log.text()))
        return None if down is None else (down - signalled, up - down)

    def start_bench(self):
        bench = subprocess.Popen([BENCH, *BENCH_ARGS, "-d", str(BENCH_MAX_S),
                                  "--connect", "127.0.0.1:%d" % self.listen],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: bench.poll() is None and (bench.kill(), bench.wait()))
        return bench

    def stop_bench(self, bench):
        """SIGINT (arrpc-bench prints its summary and exits); its JSON summary."""
        bench.send_signal(signal.SIGINT)
        out, err = bench.communicate(timeout=WAIT_S)
        self.assertEqual(bench.returncode, 0, err)
        summary = json.loads(out)
        if VERBOSE:
            print("\nsent %d, replies %d, failed %d, resent %d over %.1f s" % (
                summary["sent"], summary["replies"], summary["errors"], summary["resent"],
                summary["elapsed_s"]))
        return summary

    def connections(self):
        return [b.connections() for b in self.backends]

    def test_rolling_restart_loses_no_request(self):
        self.start_cluster()
        bench = self.start_bench()
        time.sleep(SETTLE_S)
        before = self.connections()
        down_after = [self.restart(b) for b in self.backends]
        time.sleep(SETTLE_S)
        after = self.connections()
        summary = self.stop_bench(bench)
        if VERBOSE:
            print("per backend, seconds from SIGTERM to marked down, then to marked up:",
                  ["%.2f, %.2f" % d if d else "?" for d in down_after])
            print("connections per backend before", before, "after", after)
        self.assertEqual(summary["errors"], 0, summary["errors_by_kind"])
        self.assertGreater(summary["replies"], 0)

    def test_connection_aging_brings_load_back_to_a_restarted_backend(self):
        """Without aging, arrpc-bench keeps the connections it moved off a restarted backend
        for ever; with it, they close at idle moments and HAProxy (leastconn) gives the
        reconnections to the backend that came back."""
        self.start_cluster("--max-connection-age", str(AGE_S),
                           "--max-connection-age-jitter", str(AGE_JITTER_S))
        bench = self.start_bench()
        time.sleep(SETTLE_S)
        before = self.connections()
        self.restart(self.backends[-1])
        after_restart = self.connections()
        back = wait_until(lambda: self.backends[-1].connections() > 0, timeout=WAIT_S)
        time.sleep(AGE_S + AGE_JITTER_S)  # for the figure: every connection aged once
        later = self.connections()
        summary = self.stop_bench(bench)
        if VERBOSE:
            print("connections per backend before", before, "after the restart",
                  after_restart, "after aging", later)
        self.assertTrue(back, "the restarted backend got no connection back: %s" % later)
        self.assertEqual(summary["errors"], 0, summary["errors_by_kind"])

if __name__ == "__main__":
    harness.main()
