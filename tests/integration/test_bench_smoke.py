"""test_bench_smoke.py -- arrpc-bench drives a real arrpcd for a second and counts its replies.

Benchmarks are tools, not timed tests: this asserts behaviour only (replies counted, no error,
a well-formed summary), never a rate or a latency.
"""
import json
import os
import subprocess
import tempfile
import unittest

import harness

BENCH = os.path.join(harness.BIN_DIR, "arrpc-bench")
RUN_TIMEOUT = 60  # seconds: a one-second run that takes this long is stuck


def bench(port, *args):
    """Runs arrpc-bench --json against 127.0.0.1:port; returns (exit status, summary, stderr)."""
    cmd = [BENCH, "--json", "-d", "1", "127.0.0.1:%d" % port] + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("not JSON: %r\nstderr: %s" % (proc.stdout, proc.stderr))
    return proc.returncode, summary, proc.stderr


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


if __name__ == "__main__":
    harness.main()
