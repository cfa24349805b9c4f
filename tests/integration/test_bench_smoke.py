"""test_bench_smoke.py -- arrpc-bench drives a real arrpcd for a second and counts its replies.

Benchmarks are tools, not timed tests: this asserts behaviour only (replies counted, no error,
a well-formed summary), never a rate or a latency.
"""
import contextlib
import json
import os
import re
import select
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import harness

BENCH = os.path.join(harness.BIN_DIR, "arrpc-bench")
ECHO_LIMIT = os.path.join(harness.BIN_DIR, "arrpc-echo-limit")
AUTH_COST = os.path.join(harness.BIN_DIR, "arrpc-auth-cost")
RUN_TIMEOUT = 60  # seconds: a one-second run that takes this long is stuck


def bench_cmd(port, *args):
    return [BENCH, "--json", "-d", "1", "127.0.0.1:%d" % port] + list(args)


def summary_of(proc, stdout, stderr):
    """(exit status, summary, stderr) of a finished arrpc-bench --json."""
    try:
        summary = json.loads(stdout)
    except ValueError:
        raise AssertionError("not JSON: %r\nstderr: %s" % (stdout, stderr))
    return proc.returncode, summary, stderr


def bench(port, *args):
    """Runs arrpc-bench --json against 127.0.0.1:port; returns (exit status, summary, stderr)."""
    proc = subprocess.run(bench_cmd(port, *args), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    return summary_of(proc, proc.stdout, proc.stderr)


def bench_start(port, *args):
    """Starts arrpc-bench --json in the background; bench_wait gives what bench() would."""
    return subprocess.Popen(bench_cmd(port, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def bench_wait(proc):
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    return summary_of(proc, out, err)


class BenchSmoke(unittest.TestCase):
    def assert_clean(self, status, summary, err):
        self.assertEqual(status, 0, err)
        self.assertGreater(summary["replies"], 0)
        self.assertEqual(summary["errors"], 0, summary["errors_by_kind"])
        self.assertEqual(sum(summary["errors_by_kind"].values()), 0)
        self.assertLessEqual(summary["replies"], summary["sent"])
        lat = summary["latency_us"]
        self.assertLessEqual(lat["p50"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["max"])
        self.assertGreater(summary["bytes_received"], 0)

    def test_one_second_against_arrpcd(self):
        with harness.Server() as srv:
            self.assert_clean(*bench(srv.port))

    def test_pipelined_and_verified(self):
        with harness.Server() as srv:
            status, summary, err = bench(srv.port, "-c", "4", "-P", "8", "--threads", "2",
                                         "--verify", "--size", "3000")
            self.assert_clean(status, summary, err)
            self.assertTrue(summary["verify"])
            self.assertEqual(summary["pipeline"], 8)

    def test_signed_requests(self):
        secret = b"bench-smoke-secret"
        with harness.Server(secret=secret) as srv, \
                tempfile.NamedTemporaryFile("wb", prefix="bench-secret-") as f:
            f.write(secret + b"\n")
            f.flush()
            status, summary, err = bench(srv.port, "-c", "2", "--verify",
                                         "--auth-secret-file", f.name)
            self.assert_clean(status, summary, err)
            self.assertTrue(summary["auth"])

    def test_unsigned_requests_count_as_auth_errors(self):
        with harness.Server(secret=b"not-given-to-the-client") as srv:
            status, summary, _ = bench(srv.port, "-c", "1")
            self.assertEqual(status, 1)  # no reply counted
            self.assertEqual(summary["replies"], 0)
            self.assertGreater(summary["errors_by_kind"]["auth"], 0)

    def test_server_cpu_counts_the_workers(self):
        """--server-pid sums the master and its workers: with two workers doing all the serving,
        the time reported must cover the replies' work (at least half a microsecond each, which
        any server spends; the master alone sleeps in its signal loop and would report ~0)."""
        with harness.Server("--workers", "2") as srv:
            status, summary, err = bench(srv.port, "-c", "8", "--server-pid", str(srv.proc.pid))
            self.assert_clean(status, summary, err)
            cpu = summary["server_cpu"]
            self.assertIsNotNone(cpu)
            self.assertGreater(cpu["seconds"], summary["replies"] * 0.5e-6, cpu)
            self.assertAlmostEqual(cpu["us_per_reply"],
                                   cpu["seconds"] * 1e6 / summary["replies"], delta=0.01)
            status, summary, err = bench(srv.port, "-c", "1")  # no --server-pid: not measured
            self.assert_clean(status, summary, err)
            self.assertIsNone(summary["server_cpu"])

    def test_server_pid_that_does_not_exist_is_a_usage_error(self):
        with harness.Server() as srv:
            dead = subprocess.Popen(["true"])
            dead.wait()  # reaped: its pid names no process now
            proc = subprocess.run([BENCH, "--json", "-d", "1", "--server-pid", str(dead.pid),
                                   "127.0.0.1:%d" % srv.port],
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 2)
            self.assertIn("--server-pid", proc.stderr)
            self.assertEqual(proc.stdout, "")

    def test_fixed_request_count(self):
        with harness.Server() as srv:
            cmd = [BENCH, "--json", "-n", "500", "-c", "3", "-P", "4", "--verify",
                   "127.0.0.1:%d" % srv.port]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT)
            summary = json.loads(proc.stdout)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(summary["replies"], 500)
            self.assertEqual(summary["errors"], 0)


class BenchRate(unittest.TestCase):
    """--rate: an open loop whose latency counts from each request's due time."""

    assert_clean = BenchSmoke.assert_clean

    def assert_schedule(self, summary, rate, low, high):
        """The schedule, not the machine's speed: what fell due in the measured window (sent, or
        due but never sent because the client fell behind on a loaded machine) is in
        [low, high]. How many were actually sent is a timing and is not asserted."""
        self.assertEqual(summary["rate"], rate)
        due = summary["sent"] + summary["unsent"]
        self.assertTrue(low <= due <= high, (summary["sent"], summary["unsent"]))
        self.assertGreater(summary["sent"], 0)
        lag = summary["lag_us"]
        self.assertLessEqual(lag["mean"], lag["max"])
        self.assertEqual(summary["late_after_us"], 1000)
        self.assertLessEqual(summary["late"], summary["sent"])
        self.assertGreaterEqual(summary["unsent"], 0)

    def test_rate_sends_about_rate_times_duration(self):
        with harness.Server() as srv:
            status, summary, err = bench(srv.port, "--rate", "500", "-d", "2", "-c", "4")
            self.assert_clean(status, summary, err)
            self.assert_schedule(summary, 500, 700, 1300)
            status, summary, err = bench(srv.port, "-c", "1")  # closed loop: no schedule
            self.assert_clean(status, summary, err)
            for key in ("rate", "lag_us", "late", "unsent"):
                self.assertIsNone(summary[key], key)

    def test_rate_with_threads_pipeline_verify_tls_and_signing(self):
        secret = b"bench-rate-secret"
        with harness.Server(secret=secret, tls=True) as srv, \
                tempfile.NamedTemporaryFile("wb", prefix="bench-secret-") as f:
            f.write(secret + b"\n")
            f.flush()
            status, summary, err = bench(srv.port, "--rate", "400", "-w", "0.5", "-c", "4",
                                         "-t", "2", "-P", "4", "--verify",
                                         "--auth-secret-file", f.name, *srv.client_args())
            self.assert_clean(status, summary, err)
            self.assert_schedule(summary, 400, 250, 550)
            self.assertEqual(summary["threads"], 2)

    def test_bad_rates_are_usage_errors(self):
        for bad in ("0", "-5", "1.5", "abc", "10000001"):
            with self.subTest(rate=bad):
                proc = subprocess.run([BENCH, "--rate", bad, "127.0.0.1:1"],
                                      capture_output=True, text=True, timeout=RUN_TIMEOUT)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("--rate", proc.stderr)
                self.assertEqual(proc.stdout, "")

    def test_a_stall_shows_in_the_latency(self):
        """One worker held 0.3 s by another client's sleep: requests due meanwhile wait, and
        their latency, counted from when they were due, shows it (a closed loop would send none
        of them and see one slow request per connection)."""
        with harness.Server("--workers", "1") as srv:
            proc = bench_start(srv.port, "--rate", "200", "-d", "2", "-c", "4")
            time.sleep(0.2)
            with harness.Conn(srv.port) as conn:
                conn.send({"sleep": 0.3})
                self.assertEqual(conn.recv(), "slept")
            status, summary, err = bench_wait(proc)
            self.assert_clean(status, summary, err)
            self.assertGreaterEqual(summary["latency_us"]["max"], 250000, summary["latency_us"])
            self.assertGreater(summary["late"], 0)

    def test_rate_beside_a_closed_loop_of_slow_requests(self):
        """The issue's measurement: an open loop of echoes at 1600/s on 16 connections while
        another client keeps one connection busy with {"sleep": 0.05}."""
        with harness.Server() as srv:
            proc = bench_start(srv.port, "--rate", "1600", "-c", "16")
            status, slow, err = bench(srv.port, "-c", "1", "--request", '{"sleep": 0.05}',
                                      "--verify")
            self.assert_clean(status, slow, err)
            self.assertEqual(slow["request"], {"sleep": 0.05})
            status, summary, err = bench_wait(proc)
            self.assert_clean(status, summary, err)
            self.assert_schedule(summary, 1600, 800, 2400)


class BenchRequest(unittest.TestCase):
    """--request JSON: one chosen request instead of the --size str."""

    assert_clean = BenchSmoke.assert_clean

    def test_request_from_json(self):
        with harness.Server() as srv:
            status, summary, err = bench(srv.port, "-c", "2", "--request", '{"echo": "x"}',
                                         "--verify")
            self.assert_clean(status, summary, err)
            self.assertEqual(summary["request"], {"echo": "x"})
            self.assertEqual(summary["request_bytes"], 8)  # fixmap, "echo", "x"

    def test_error_replies_count_as_errors(self):
        with harness.Server() as srv:
            status, summary, _ = bench(srv.port, "-c", "1", "--request", '{"fail": "no"}')
            self.assertEqual(status, 1)
            self.assertEqual(summary["replies"], 0)
            self.assertGreater(summary["errors_by_kind"]["rpc"], 0)

    def test_bad_requests_are_usage_errors(self):
        for args in (["--request", "{not json"], ["--request", '{"echo": 1}', "--size", "3"],
                     ["--request", '{"echo": 1}', "--proto", "resp"]):
            with self.subTest(args=args):
                proc = subprocess.run([BENCH] + args + ["127.0.0.1:1"], capture_output=True,
                                      text=True, timeout=RUN_TIMEOUT)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("--request", proc.stderr)


@contextlib.contextmanager
def echo_limit():
    """arrpc-echo-limit on an ephemeral loopback port; yields (process, port); stopped by PID."""
    proc = subprocess.Popen([ECHO_LIMIT, "--listen", "127.0.0.1:0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stderr], [], [], harness.START_TIMEOUT)
        line = proc.stderr.readline() if ready else ""
        m = re.search(r"listening on [^ ]*:(\d+)", line)
        if not m:
            raise RuntimeError("arrpc-echo-limit did not start: %r" % line)
        yield proc, int(m.group(1))
    finally:
        proc.kill()  # it keeps no state worth a graceful stop
        proc.wait(timeout=harness.STOP_TIMEOUT)
        proc.stderr.close()


def recv_until_closed(sock):
    """Everything the server sends before it closes sock (b"" when it closes at once)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class EchoLimit(unittest.TestCase):
    """arrpc-echo-limit, compare.sh's reference server: answers arrpc-bench's request exactly as
    arrpcd's demo handler does, and closes a connection that sends what is not MessagePack."""

    assert_clean = BenchSmoke.assert_clean

    def test_bench_verifies_its_replies(self):
        with echo_limit() as (_, port):
            status, summary, err = bench(port, "-c", "4", "-P", "8", "--verify")
            self.assert_clean(status, summary, err)
            self.assertTrue(summary["verify"])
            status, summary, err = bench(port, "-c", "2", "--verify", "--size", "3000")
            self.assert_clean(status, summary, err)

    def test_invalid_input_closes_only_that_connection(self):
        too_big = b"\xdb" + struct.pack(">I", 2 * 1024 * 1024)  # a str of 2 MiB: over 1 MiB
        with echo_limit() as (proc, port):
            with socket.create_connection(("127.0.0.1", port), timeout=harness.IO_TIMEOUT) as good:
                for bad in (b"\x01\xc1", too_big):
                    with self.subTest(bad=bad), socket.create_connection(
                            ("127.0.0.1", port), timeout=harness.IO_TIMEOUT) as s:
                        s.sendall(bad)
                        # 0x01 is a whole message: answered before the close; 0xdb is not
                        self.assertEqual(recv_until_closed(s), bad[:1] if bad[0] == 1 else b"")
                # a message split over two writes is still answered whole, once
                good.sendall(b"\x92\xa3ab")
                good.sendall(b"c\x05")
                self.assertEqual(good.recv(64), b"\x92\xa3abc\x05")
            self.assertIsNone(proc.poll())


class AuthCost(unittest.TestCase):
    """arrpc-auth-cost, the MAC check timed alone: a time for each part, and the check it times
    succeeds (a failed check would be said on stderr)."""

    def test_times_the_check_and_the_hmac(self):
        for size in ("0", "17", "100000"):
            proc = subprocess.run([AUTH_COST, "--size", size, "--calls", "200", "--rounds", "2"],
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stderr, "")
            self.assertIn("signed data: %s bytes" % size, proc.stdout)
            for part in ("MAC check", "HMAC-SHA256 alone"):
                m = re.search(re.escape(part) + r".*?: +([0-9.]+) ns", proc.stdout)
                self.assertTrue(m and float(m.group(1)) > 0, proc.stdout)

    def test_bad_options_are_usage_errors(self):
        for args in (["--size", "2000000"], ["--calls", "0"], ["surplus"]):
            proc = subprocess.run([AUTH_COST] + args, capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 2, args)


if __name__ == "__main__":
    harness.main()
