"""Recycling workers (--max-requests, --max-requests-jitter, --max-worker-rss,
--max-worker-lifetime) under load: a worker past its bound is replaced through the reload
hand-over, so no request fails and no connection closes.

Load comes from arrpc-bench --verify in a separate process at a fixed rate: every failed
request counts, and a connection closed by the server is a failure of its own ("closed"). The
rate keeps the number of recycles per run modest on a busy machine; nothing here asserts a
timing. Every test bounds its run time and stops what it started by PID.
"""
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

import harness
from harness import Server, Tls
from test_master import WAIT_S, Load, alive, children, kill_quietly, new_master, wait_until
from test_metrics import metrics_port, scrape, total
from test_tls import Driver as TlsDriver

LEFTOVER_MARGIN_S = 8  # past its lifetime: a worker this old was left behind, not waiting its turn


def process_age_s(pid):
    """Seconds since pid started (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (FileNotFoundError, ProcessLookupError):
        return 0
RECYCLED = re.compile(r"worker (\d+) recycled: (.*); worker (\d+) takes its connections")
BY_REQUESTS = re.compile(r"^(\d+) requests >= (\d+)$")


def recycles(server):
    """[(old pid, reason, new pid)] from the master's log, in order."""
    return [(int(a), why, int(b)) for a, why, b in RECYCLED.findall(server.log())]


class RecycleCase(unittest.TestCase):
    def start(self, *args):
        server = Server("--metrics-listen", "127.0.0.1:0", *args, tls=False).start()
        self.addCleanup(server.stop)
        return server, metrics_port(server)

    def assert_nothing_failed(self, report):
        self.assertGreater(report["replies"], 0)
        self.assertEqual(report["errors"], 0, report["errors_by_kind"])
        self.assertEqual(report["errors_by_kind"]["closed"], 0)

    def assert_counted(self, mport, server, done):
        """The restarts metric says "recycle" once per recycle the log names, once each old
        worker has exited, and no other cause. Where recycling goes on (a lifetime bound), more
        recycles may be logged and counted meanwhile, and in pairs (workers started together
        age together): every recycle in `done` must come to be counted, and the metric must
        never count more than the log has named by then."""
        def counted():
            return total(scrape(mport), "arrpc_server_worker_restarts_total", cause="recycle")

        def consistent():
            metric = counted()
            return len(done) <= metric <= len(recycles(server))
        self.assertTrue(wait_until(consistent),
                        "metric %s, log %d then %d\n%s" % (counted(), len(done),
                                                           len(recycles(server)),
                                                           server.log()[-3000:]))
        sample = scrape(mport)
        for cause in ("crash", "timeout", "start_failure", "reload"):
            self.assertEqual(total(sample, "arrpc_server_worker_restarts_total", cause=cause), 0,
                             cause)

    def assert_workers(self, server, count, lifetime_s=None):
        """The master ends up with exactly `count` workers: no replacement is left behind."""
        self.assert_workers_of(server.pid, count, server, lifetime_s)

    def assert_workers_of(self, master, count, server, lifetime_s=None):
        """With --max-worker-lifetime (lifetime_s) recycling never stops, and on a loaded
        machine a replacement may be starting at every look: then count + 1 workers, all
        younger than a lifetime and LEFTOVER_MARGIN_S, also pass. A replacement left behind
        would grow older than that."""
        def settled():
            live = [p for p in children(master) if alive(p)]
            if len(live) == count:
                return True
            return (lifetime_s is not None and len(live) == count + 1 and
                    all(process_age_s(p) < lifetime_s + LEFTOVER_MARGIN_S for p in live))
        self.assertTrue(wait_until(settled),
                        "workers %s\n%s" % (children(master), server.log()[-3000:]))


class MaxRequestsTest(RecycleCase):
    def run_under_load(self, *extra):
        server, mport = self.start("--workers", "2", "--max-requests", "2000",
                                   "--max-requests-jitter", "500", *extra)
        report = Load(server.port, seconds=12, rate=3000).result(
            "max-requests%s" % "".join(" " + a for a in extra))
        self.assert_nothing_failed(report)
        done = recycles(server)
        print("recycles: %d for %d replies (%d..%d if each worker went at its bound)" % (
            len(done), report["replies"], report["replies"] // 2500, report["replies"] // 2000))
        # Each recycled worker answered at least its bound, 2000 + its jitter: never more
        # recycles than replies / 2000. A worker goes on serving until its replacement is ready,
        # so a slow machine recycles less often; the lower bound is loose on purpose.
        self.assertGreaterEqual(len(done), max(1, report["replies"] // 10000), server.log())
        self.assertLessEqual(len(done), report["replies"] // 2000)
        bounds = set()
        for _, why, _ in done:
            m = BY_REQUESTS.match(why)
            self.assertIsNotNone(m, why)
            served, bound = int(m.group(1)), int(m.group(2))
            self.assertGreaterEqual(served, bound)
            self.assertTrue(2000 <= bound <= 2500, why)  # N plus a jitter from 0 to J
            bounds.add(bound)
        if len(done) >= 3:
            self.assertGreater(len(bounds), 1, "every worker drew the same jitter")
        self.assert_counted(mport, server, done)
        self.assert_workers(server, 2)

    def test_recycles_under_load_fail_nothing(self):
        self.run_under_load()

    def test_recycles_with_handler_threads_fail_nothing(self):
        self.run_under_load("--threads", "4")

    def test_off_by_default(self):
        server, mport = self.start("--workers", "2")
        report = Load(server.port, seconds=3, rate=2000).result("defaults")
        self.assert_nothing_failed(report)
        self.assertEqual(recycles(server), [])
        self.assertEqual(total(scrape(mport), "arrpc_server_worker_restarts_total",
                               cause="recycle"), 0)


class MaxRssTest(RecycleCase):
    LEAK = 256 * 1024  # bytes each request keeps

    def test_leak_grows_only_its_own_worker(self):
        server = Server("--workers", "1", tls=False).start()
        self.addCleanup(server.stop)
        with server.connect() as c:
            self.assertEqual(c.call({"leak": 1000}), 1000)
            self.assertEqual(c.call({"leak": 24}), 1024)
            too_much = c.call({"leak": 64 * 1024 * 1024 + 1})
        self.assertTrue(too_much.startswith(harness.RPC_PREFIX + "leak wants"), too_much)

    def test_leaking_worker_is_recycled(self):
        server, mport = self.start("--workers", "2", "--max-worker-rss", "48")
        report = Load(server.port, seconds=6, rate=200, connections=4,
                          request={"leak": self.LEAK}).result("max-worker-rss 48")
        self.assert_nothing_failed(report)
        done = recycles(server)
        self.assertGreater(len(done), 0, server.log()[-3000:])
        for _, why, _ in done:
            m = re.match(r"resident memory (\d+) MiB >= 48 MiB$", why)
            self.assertIsNotNone(m, why)
            self.assertGreaterEqual(int(m.group(1)), 48)
        self.assert_counted(mport, server, done)
        self.assert_workers(server, 2)


class MaxLifetimeTest(RecycleCase):
    def test_old_workers_are_recycled(self):
        server, mport = self.start("--workers", "2", "--max-worker-lifetime", "2")
        first = set(children(server.pid))
        report = Load(server.port, seconds=7, rate=2000).result("max-worker-lifetime 2")
        self.assert_nothing_failed(report)
        done = recycles(server)
        self.assertGreaterEqual(len(done), 2, server.log()[-3000:])
        self.assertTrue(first <= {old for old, _, _ in done}, (first, done))
        for _, why, _ in done:
            self.assertRegex(why, r"^lived \d+\.\d s >= 2\.0 s$")
        self.assert_counted(mport, server, done)
        self.assert_workers(server, 2, lifetime_s=2)

    def test_with_handler_threads(self):
        server, mport = self.start("--workers", "2", "--threads", "4",
                                   "--max-worker-lifetime", "2")
        report = Load(server.port, seconds=6, rate=2000).result(
            "max-worker-lifetime 2 --threads 4")
        self.assert_nothing_failed(report)
        done = recycles(server)
        self.assertGreaterEqual(len(done), 2, server.log()[-3000:])
        self.assert_counted(mport, server, done)
        self.assert_workers(server, 2, lifetime_s=2)


class RecycleOverTlsTest(unittest.TestCase):
    """TLS connections cannot change process (their keys live in the old worker): as on a
    reload, the recycled worker keeps them until the drain deadline, then closes each at an idle
    moment with close_notify. arrpc's C client reconnects and resends, so it sees no failure."""

    def test_c_client_sees_no_failure(self):
        tls = Tls()
        with Server("--workers", "2", "--drain-timeout", "1", "--max-worker-lifetime", "2",
                    tls=tls) as srv:
            stop = threading.Event()
            results = []

            def load():
                d = TlsDriver(srv.port, "--retries", "5", "--backoff", "100",
                              *tls.client_args())
                ok = 0
                i = 0
                while not stop.is_set():
                    answer = d.send({"echo": i})
                    if answer.startswith("ok "):
                        ok += 1
                    else:
                        results.append(answer)
                    i += 1
                d.stop()
                results.append(ok)

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            try:
                wait_until(lambda: len(recycles(srv)) >= 3, timeout=WAIT_S)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=60)
            failures = [r for r in results if not isinstance(r, int)]
            sent = sum(r for r in results if isinstance(r, int))
            print("tls max-worker-lifetime 2: sent %d, failed %d; recycles %d" % (
                sent + len(failures), len(failures), len(recycles(srv))))
            self.assertEqual(failures, [], srv.log()[-3000:])
            self.assertGreaterEqual(len(recycles(srv)), 3, srv.log()[-3000:])


class RecycleWithSignalsTest(RecycleCase):
    def test_reloads_and_scaling_while_recycling_fail_nothing(self):
        """A recycle under way meets a reload (its replacement then either takes the old
        worker's connections and is reloaded in turn, or is not needed and hands back what it
        accepted) and scaling (the replacement still starting is not needed): nothing fails, and
        the worker count ends as asked, with no replacement left over."""
        server, _ = self.start("--workers", "2", "--max-worker-lifetime", "1")
        load = Load(server.port, seconds=9, rate=2000)
        time.sleep(1.0)
        # Each signal once the previous one is done: the master ignores scaling during a reload.
        steps = ((signal.SIGHUP, "reload: generation 2 serving"),
                 (signal.SIGTTIN, "SIGTTIN: 3 workers"),
                 (signal.SIGHUP, "reload: generation 3 serving"),
                 (signal.SIGTTOU, "SIGTTOU: 2 workers"),
                 (signal.SIGTTOU, "SIGTTOU: 1 workers"),
                 (signal.SIGHUP, "reload: generation 4 serving"),
                 (signal.SIGTTIN, "SIGTTIN: 2 workers"))
        for sig, done in steps:
            server.signal(sig)
            self.assertTrue(wait_until(lambda: done in server.log()), server.log()[-3000:])
            time.sleep(0.5)
        self.assert_nothing_failed(load.result("max-worker-lifetime 1 with HUP/TTIN/TTOU"))
        self.assertGreater(len(recycles(server)), 0, server.log()[-3000:])
        self.assert_workers(server, 2, lifetime_s=1)

    def test_binary_upgrades_while_recycling_fail_nothing(self):
        """USR2 while a replacement starts: the replacement is not used and retires into the new
        master's worker with the old one; the new master recycles its own workers in turn."""
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        pid_file = os.path.join(tmp, "arrpcd.pid")
        server = Server("--workers", "2", "--max-worker-lifetime", "1", "--pid-file", pid_file,
                        tls=False).start()
        self.addCleanup(server.stop)
        masters = [server.pid]
        self.addCleanup(lambda: [kill_quietly(p) for p in masters[1:]])
        load = Load(server.port, seconds=8, rate=2000)
        time.sleep(1.0)
        current = server.pid
        for i in range(3):
            os.kill(current, signal.SIGUSR2)
            pid = new_master(pid_file, current)
            self.assertTrue(pid, "upgrade %d did not complete:\n%s" % (i + 1, server.log()))
            masters.append(pid)
            current = pid
            time.sleep(1.2)  # past a worker lifetime: the new master recycles too
        self.assert_nothing_failed(load.result("max-worker-lifetime 1 with 3 USR2"))
        self.assertGreater(len(recycles(server)), 0, server.log()[-3000:])
        self.assert_workers_of(current, 2, server, lifetime_s=1)
        os.kill(current, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not alive(current)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
