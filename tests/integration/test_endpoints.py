"""test_endpoints.py -- the client past one host: a list of endpoints (arrpc-call --connect and
arrpc-bench --connect), a refused endpoint skipped, a DNS name, an idempotent request resent on
another backend when its connection breaks, and arrpc-bench riding through a backend killed with
SIGQUIT (arrpcd's fast stop: its workers are SIGKILLed) and brought back on the same port.

Backends listen on 127.0.0.2, 127.0.0.3 and 127.0.0.4, each on its own ephemeral port. Nothing
here asserts a time: pauses only give a killed server time to die, and every wait is bounded.
"""
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
import promtext
from harness import Server
from test_client import Driver
from test_client_metrics import render
from test_metrics import metrics_port, scrape

CALL = os.path.join(harness.BIN_DIR, "arrpc-call")
BENCH = os.path.join(harness.BIN_DIR, "arrpc-bench")
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
RUN_TIMEOUT = 60       # seconds for one arrpc-call or arrpc-bench run
BENCH_SECONDS = 6      # the bench's measured run
KILL_AFTER_S = 1.5     # into the run: SIGQUIT one backend
DOWN_FOR_S = 1.5       # then start it again on its port
SLEEP_REQUEST = '{"sleep": 0.005}'  # keeps requests in flight on every connection, cheaply
WAIT_S = 10            # bound on waiting for a log line


def call(*args, input=None):
    return subprocess.run([CALL, "--retries", "2", "--retry-backoff", "0.1", *args],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, input=input)


def closed_port(host):
    """A socket bound to host:port that does not listen: connects to it are refused. Keep it
    open while the port must stay refused."""
    s = socket.socket()
    s.bind((host, 0))
    return s


def endpoint(server, host):
    return "%s:%d" % (host, server.port)


def served(server):
    """Requests a backend started with --metrics-listen has answered."""
    return sum(v for (name, _), v in scrape(metrics_port(server)).items()
               if name == "arrpc_server_req_seconds_count")


class EndpointsCase(unittest.TestCase):
    def backend(self, host, *args, port=0):
        server = Server("--workers", "1", *args, listen="%s:%d" % (host, port), tls=False)
        server.start()
        self.addCleanup(server.stop)
        return server


class CallListTest(EndpointsCase):
    def test_refused_endpoint_is_skipped(self):
        refused = closed_port(HOSTS[0])
        self.addCleanup(refused.close)
        good = self.backend(HOSTS[1])
        spec = "%s:%d,%s" % (HOSTS[0], refused.getsockname()[1], endpoint(good, HOSTS[1]))
        for i in range(3):  # each run starts at the refused one
            r = call("--connect", spec, json.dumps({"n": i}))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout), {"n": i})

    def test_all_refused_is_a_connect_error_naming_the_list(self):
        a, b = closed_port(HOSTS[0]), closed_port(HOSTS[1])
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        spec = "%s:%d,%s:%d" % (HOSTS[0], a.getsockname()[1], HOSTS[1], b.getsockname()[1])
        r = call("--connect", spec, "1")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("any of 2 endpoints", r.stderr)

    def test_dns_name(self):
        server = self.backend("127.0.0.1")
        r = call("--connect", "localhost:%d" % server.port, '"by name"')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), "by name")

    def test_bad_list_is_a_usage_error(self):
        for spec in ("127.0.0.2:1,", "127.0.0.2", "[::1:5", "127.0.0.2:0"):
            r = call("--connect", spec, "1")
            self.assertEqual(r.returncode, 2, spec)
            self.assertIn("--connect", r.stderr)

    def test_batch_over_a_list(self):
        a, b = self.backend(HOSTS[0]), self.backend(HOSTS[1])
        lines = "".join("%d\n" % i for i in range(50))
        r = call("--connect", "%s,%s" % (endpoint(a, HOSTS[0]), endpoint(b, HOSTS[1])),
                 "--lines", "--idempotent", input=lines)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), [str(i) for i in range(50)])


class ResendTest(EndpointsCase):
    """One {"sleep": 2} request in flight on the first backend when it is killed."""

    def run_killed(self, *args):
        first, second = self.backend(HOSTS[0]), self.backend(HOSTS[1])
        spec = "%s,%s" % (endpoint(first, HOSTS[0]), endpoint(second, HOSTS[1]))
        err = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen([CALL, "--debug", "--connect", spec, *args, '{"sleep": 2}'],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            err.seek(0)
            if "connected to %s" % HOSTS[0] in err.read():
                break
            time.sleep(0.02)
        time.sleep(0.3)  # the request reaches the handler (either way it gets no reply)
        first.signal(signal.SIGQUIT)
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        err.seek(0)
        return proc.returncode, out, err.read()

    def test_idempotent_request_is_answered_by_the_other_backend(self):
        status, out, err = self.run_killed("--idempotent")
        self.assertEqual(status, 0, err)
        self.assertEqual(json.loads(out), "slept")
        self.assertIn("connected to %s" % HOSTS[1], err)

    def test_without_idempotent_the_failure_is_reported(self):
        status, out, err = self.run_killed()
        self.assertEqual(status, 7, err)  # EXIT_OTHER: the connection closed before the reply
        self.assertEqual(out, "")
        self.assertIn("closed", err)


def tcp_timer_to(host, port):
    """The kernel's timer kind (/proc/net/tcp "tr": 0 none, 1 retransmit, 2 keepalive, ...) of
    the established connections to host:port, as a list."""
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(host), "little"), port)
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return [int(r[5].split(":")[0], 16) for r in rows if r[2] == want and r[3] == "01"]


class KeepaliveTest(EndpointsCase):
    def timers_during_a_call(self, *args):
        """The set of timer kinds seen on the client's connection while a call sleeps 1 s."""
        server = self.backend(HOSTS[0])
        proc = subprocess.Popen([CALL, "--connect", endpoint(server, HOSTS[0]), *args,
                                 '{"sleep": 1}'], stdout=subprocess.PIPE, text=True)
        seen = set()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and proc.poll() is None:
            seen.update(tcp_timer_to(HOSTS[0], server.port))
            time.sleep(0.02)
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(json.loads(out), "slept")
        self.assertTrue(seen, "the connection was never seen")
        return seen

    def test_client_sockets_have_keepalive(self):
        self.assertIn(2, self.timers_during_a_call())

    def test_keepalive_0_turns_it_off(self):
        self.assertNotIn(2, self.timers_during_a_call("--keepalive", "0"))


class FakeBackend:
    """A server on host:0 that reads one request, writes `answer` (raw bytes, maybe part of a
    reply, maybe nothing) and closes the connection; one connection, bounded by a timeout."""

    def __init__(self, host, answer):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(1)
        self.sock.settimeout(RUN_TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.got_request = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(RUN_TIMEOUT)
                self.got_request = bool(conn.recv(4096))
                conn.sendall(self.answer)
        except OSError:
            pass

    def close(self):
        self.sock.close()
        self.thread.join(RUN_TIMEOUT)


class ResendSafetyTest(EndpointsCase):
    """A backend that closes after reading the request, with no reply byte or with part of one."""

    def call_through(self, answer):
        fake = FakeBackend(HOSTS[0], answer)
        self.addCleanup(fake.close)
        real = self.backend(HOSTS[1], "--metrics-listen", "127.0.0.1:0")
        spec = "%s:%d,%s" % (HOSTS[0], fake.port, endpoint(real, HOSTS[1]))
        r = call("--connect", spec, "--idempotent", '"hello"')
        fake.thread.join(RUN_TIMEOUT)
        self.assertTrue(fake.got_request)
        return r, served(real)

    def test_no_reply_byte_is_resent(self):
        r, count = self.call_through(b"")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), "hello")
        self.assertEqual(count, 1)

    def test_part_of_a_reply_is_never_resent(self):
        r, count = self.call_through(b"\xa5he")  # the first 3 bytes of "hello"
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertIn("closed", r.stderr)
        self.assertEqual(count, 0)


class TlsNamesTest(EndpointsCase):
    """Over TLS each server's certificate is checked against the host of its own entry."""

    def tls_backend(self, host, cert_for):
        cert, key = harness.pki().make_cert("server-" + cert_for, names=(cert_for,))
        server = Server("--workers", "1", listen=host + ":0", tls=harness.Tls(cert, key))
        server.start()
        self.addCleanup(server.stop)
        return server

    def call_tls(self, spec):
        return call("--connect", spec, "--tls-cafile", harness.pki().ca[0], '"tls"')

    def test_each_entry_is_checked_against_its_own_host(self):
        a = self.tls_backend(HOSTS[0], HOSTS[0])
        b = self.tls_backend(HOSTS[1], HOSTS[1])
        for spec in ("%s,%s" % (endpoint(a, HOSTS[0]), endpoint(b, HOSTS[1])),
                     "%s,%s" % (endpoint(b, HOSTS[1]), endpoint(a, HOSTS[0]))):
            r = self.call_tls(spec)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout), "tls")

    def test_a_certificate_for_another_entry_is_refused(self):
        wrong = self.tls_backend(HOSTS[1], HOSTS[0])  # serves 127.0.0.3 with 127.0.0.2's name
        r = self.call_tls(endpoint(wrong, HOSTS[1]))
        self.assertEqual(r.returncode, 8, r.stderr)  # EXIT_TLS


class LibraryTest(EndpointsCase):
    """The C client itself (client_driver), one long-lived client over reconnects."""

    def driver(self, spec, *args):
        d = Driver(0, "--connect", spec, "--retries", "2", "--backoff", "100", *args)
        self.addCleanup(d.stop)
        return d

    def test_each_connect_takes_the_next_endpoint(self):
        a = self.backend(HOSTS[0], "--metrics-listen", "127.0.0.1:0")
        b = self.backend(HOSTS[1], "--metrics-listen", "127.0.0.1:0")
        d = self.driver("%s,%s" % (endpoint(a, HOSTS[0]), endpoint(b, HOSTS[1])))
        for i in range(6):
            self.assertEqual(d.call(i), i)
            self.assertEqual(d.command("close"), "ok")
        self.assertEqual((served(a), served(b)), (3, 3))

    def test_a_resend_is_counted_in_the_retries_metric(self):
        fake = FakeBackend(HOSTS[0], b"")
        self.addCleanup(fake.close)
        real = self.backend(HOSTS[1])
        d = self.driver("%s:%d,%s" % (HOSTS[0], fake.port, endpoint(real, HOSTS[1])),
                        "--idempotent")
        self.assertEqual(d.command("metrics-on"), "ok")
        self.assertEqual(d.call("hello"), "hello")
        s = promtext.parse(render(d))
        def by_address(family):
            return {dict(ls)["remote_address"]: v for (name, ls), v in s.items()
                    if name == family}
        # labelled with the list's first host; the resent request is still one request
        self.assertEqual(by_address("arrpc_client_retries_total"), {HOSTS[0]: 1})
        self.assertEqual(by_address("arrpc_client_req_seconds_count"), {HOSTS[0]: 1})


class BatchResendTest(EndpointsCase):
    def test_only_the_unanswered_requests_are_resent_in_order(self):
        """A batch of four whose first two are answered before the first backend is killed
        during the third (handlers on threads, so the first replies are written at once): the
        second backend receives exactly the last two."""
        first = self.backend(HOSTS[0], "--threads", "2")
        second = self.backend(HOSTS[1], "--metrics-listen", "127.0.0.1:0")
        spec = "%s,%s" % (endpoint(first, HOSTS[0]), endpoint(second, HOSTS[1]))
        err = tempfile.TemporaryFile("w+")
        proc = subprocess.Popen([CALL, "--debug", "--lines", "--idempotent", "--connect", spec],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                text=True)
        proc.stdin.write('1\n2\n{"sleep": 2}\n3\n')
        proc.stdin.close()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            err.seek(0)
            if "reply 2 of 4" in err.read():
                break
            time.sleep(0.02)
        first.signal(signal.SIGQUIT)
        out = proc.stdout.read()
        self.assertEqual(proc.wait(timeout=RUN_TIMEOUT), 0)
        self.assertEqual([json.loads(line) for line in out.split()], [1, 2, "slept", 3])
        self.assertEqual(served(second), 2)


class BenchFailoverTest(EndpointsCase):
    def run_with_a_restart(self, *args):
        """arrpc-bench over three backends while the third is killed and started again; returns
        (summary, the restarted backend's request count)."""
        servers = [self.backend(h) for h in HOSTS]
        spec = ",".join(endpoint(s, h) for s, h in zip(servers, HOSTS))
        proc = subprocess.Popen([BENCH, "--json", "-q", "--verify", "-c", "6", "-P", "2",
                                 "--request", SLEEP_REQUEST, "-d", str(BENCH_SECONDS),
                                 "--connect", spec, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(KILL_AFTER_S)
        servers[2].signal(signal.SIGQUIT)
        servers[2].wait()
        time.sleep(DOWN_FOR_S)
        back = self.backend(HOSTS[2], "--metrics-listen", "127.0.0.1:0", port=servers[2].port)
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        self.assertEqual(proc.returncode, 0, err)
        summary = json.loads(out)
        count = served(back)
        if os.environ.get("ARRPC_TEST_VERBOSE"):
            print(json.dumps(summary, indent=1), "restarted backend served", count)
        return summary, count

    def test_idempotent_bench_loses_nothing_and_traffic_returns(self):
        summary, count = self.run_with_a_restart("--idempotent")
        self.assertEqual(summary["errors"], 0, summary["errors_by_kind"])
        self.assertGreater(summary["replies"], 0)
        self.assertGreater(summary["resent"], 0)  # the killed backend had requests in flight
        self.assertGreater(count, 0)  # connections went back to the restarted backend

    def test_without_idempotent_the_failures_are_counted(self):
        summary, _ = self.run_with_a_restart()
        self.assertGreater(summary["errors_by_kind"]["closed"], 0, summary)
        self.assertEqual(summary["resent"], 0)


if __name__ == "__main__":
    unittest.main()
