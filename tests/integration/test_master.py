"""The pre-fork master under load: reloads, upgrades, scaling, crashes, stuck handlers.

Load comes from arrpc-bench in a separate process: it counts every failed request, and a
connection closed by the server is a failure ("closed"). Every test bounds its run time and
stops what it started by PID.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import msgpack

import harness
from harness import BIN_DIR, LIB_DIR, Server

BENCH = os.path.join(BIN_DIR, "arrpc-bench")
DEMO_V2 = os.path.join(LIB_DIR, "arrpc-demo-v2.so")
WAIT_S = 20.0  # bound on any wait for the master to act


def children(pid):
    """The worker pids of a master (its direct children)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return sorted(int(p) for p in f.read().split())
    except FileNotFoundError:
        return []


def alive(pid):
    """True while pid runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or during the read
        return False


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(predicate, timeout=WAIT_S, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def new_master(pid_file, old):
    """After SIGUSR2 to master old: the pid the pid file names once old is gone, or None after
    WAIT_S."""
    def replaced():
        try:
            with open(pid_file) as f:
                pid = int(f.read())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid != old and not alive(old) else None
    return wait_until(replaced)


class Load:
    """arrpc-bench --verify as a separate process for `seconds`: closed loop (`pipeline` calls in
    flight per connection), or open loop at `rate` requests a second; `request`, a JSON-able
    object, instead of the default request."""

    def __init__(self, port, seconds, connections=16, pipeline=1, rate=None, request=None):
        cmd = [BENCH, "-q", "--json", "--verify", "-c", str(connections), "-d", str(seconds)]
        cmd += ["-R", str(rate)] if rate else ["-P", str(pipeline)]
        if request is not None:
            cmd += ["--request", json.dumps(request)]
        cmd.append("127.0.0.1:%d" % port)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.seconds = seconds

    def result(self, name="load"):
        try:
            out, err = self.proc.communicate(timeout=self.seconds + WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        report = json.loads(out.decode())
        print("%s: sent %d, replies %d, failed %d, closed %d" % (
            name, report["sent"], report["replies"], report["errors"],
            report["errors_by_kind"]["closed"]))
        return report


def reloads_done(server):
    return server.log().count("reload: generation")


class MasterCase(unittest.TestCase):
    def start(self, *args, **kw):
        server = Server(*args, **kw).start()
        self.addCleanup(server.stop)
        return server

    def assert_no_failures(self, report):
        self.assertGreater(report["replies"], 0)
        self.assertEqual(report["errors"], 0, report["errors_by_kind"])

    def hup_and_wait(self, server, count=1):
        before = reloads_done(server)
        server.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: reloads_done(server) >= before + count),
                        server.log()[-2000:])


class ReloadTest(MasterCase):
    def test_20_reloads_under_load_fail_nothing(self):
        server = self.start("--workers", "2")
        load = Load(server.port, seconds=8)
        time.sleep(0.5)
        for _ in range(20):
            self.hup_and_wait(server)
            time.sleep(0.1)
        self.assert_no_failures(load.result())
        self.assertIn("generation 21 serving", server.log())

    def test_reloads_with_16_requests_in_flight_per_connection(self):
        server = self.start("--workers", "2")
        load = Load(server.port, seconds=5, connections=8, pipeline=16)
        time.sleep(0.5)
        for _ in range(8):
            self.hup_and_wait(server)
            time.sleep(0.1)
        self.assert_no_failures(load.result())

    def test_new_plugin_on_disk_answers_after_reload_on_old_connections(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        plugin = os.path.join(tmp, "handler.so")
        shutil.copy(harness.DEMO_PLUGIN, plugin)
        server = self.start("--workers", "2", handler=plugin)
        conns = [server.connect() for _ in range(6)]
        for c in conns:
            self.addCleanup(c.close)
            self.assertEqual(c.call({"version": 1}), "demo-1")
        staged = plugin + ".new"  # replaced by rename, as deploy tools do
        shutil.copy(DEMO_V2, staged)
        os.rename(staged, plugin)
        self.hup_and_wait(server)
        for c in conns:  # the same connections, now served by the new generation
            self.assertEqual(c.call({"version": 1}), "demo-2")
        with server.connect() as fresh:
            self.assertEqual(fresh.call({"version": 1}), "demo-2")

    def test_request_half_sent_across_a_reload_is_answered(self):
        server = self.start("--workers", "1")
        payload = os.urandom(3 * 1024 * 1024)  # larger than a hand-over message: a memfd
        data = msgpack.packb({"echo": payload}, use_bin_type=True)
        with server.connect() as c:
            pid_before = c.call({"pid": 1})
            c.send_raw(data[: len(data) // 2])
            time.sleep(0.2)
            self.hup_and_wait(server)
            c.send_raw(data[len(data) // 2:])
            self.assertEqual(c.recv(), payload)
            self.assertNotEqual(c.call({"pid": 1}), pid_before)

    def test_failed_reload_keeps_the_old_generation(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        plugin = os.path.join(tmp, "handler.so")
        shutil.copy(harness.DEMO_PLUGIN, plugin)
        server = self.start("--workers", "2", handler=plugin)
        with server.connect() as c:
            self.assertEqual(c.call({"version": 1}), "demo-1")
            with open(plugin + ".new", "wb") as f:
                f.write(b"not a shared object")
            os.rename(plugin + ".new", plugin)
            server.signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: "reload failed" in server.log()), server.log())
            self.assertEqual(c.call({"version": 1}), "demo-1")
        with server.connect() as fresh:
            self.assertEqual(fresh.call({"version": 1}), "demo-1")

    def test_failed_secret_reread_keeps_the_serving_secret(self):
        """A secret file that fails to load on SIGHUP (here: longer than the limit) fails the
        reload; a worker started afterwards (the crashed one's replacement) still checks the
        secret that was serving, not a half-overwritten one."""
        server = self.start("--workers", "1", secret=b"the first secret")
        with server.connect(secret=b"the first secret") as c:
            self.assertEqual(c.call({"echo": 1}), 1)
        with open(server._secret_file.name, "wb") as f:
            f.write(b"x" * 5000)  # over ARRPC_AUTH_SECRET_MAX (4096)
        server.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload aborted" in server.log()), server.log())
        with server.connect(secret=b"the first secret") as c:
            pid = c.call({"pid": 1})
            c.send({"crash": True})
        self.assertTrue(wait_until(lambda: not alive(pid)), server.log())
        def answered():
            try:
                with server.connect(secret=b"the first secret") as c:
                    return c.call({"pid": 1}) != pid
            except OSError:
                return False
        self.assertTrue(wait_until(answered), server.log())
        with server.connect(secret=b"the first secret") as c:
            self.assertEqual(c.call({"echo": 2}), 2)


class UpgradeTest(MasterCase):
    def test_5_binary_upgrades_under_load(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        pid_file = os.path.join(tmp, "arrpcd.pid")
        server = self.start("--workers", "2", "--pid-file", pid_file)
        load = Load(server.port, seconds=8)
        time.sleep(0.5)
        masters = [server.pid]
        current = server.pid
        self.addCleanup(lambda: [kill_quietly(p) for p in masters])
        for i in range(5):
            os.kill(current, signal.SIGUSR2)
            pid = new_master(pid_file, current)
            self.assertTrue(pid, "upgrade %d did not complete:\n%s" % (i + 1, server.log()))
            self.assertFalse(os.path.exists(pid_file + ".oldbin"))
            masters.append(pid)
            current = pid
        self.assert_no_failures(load.result())
        self.assertEqual(len(set(masters)), 6)
        with server.connect() as c:
            self.assertEqual(c.call("after"), "after")
        os.kill(current, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not alive(current)))
        self.assertFalse(os.path.exists(pid_file))


    def test_usr2_during_a_reload_runs_when_it_ends(self):
        """SIGUSR2 right after SIGHUP finds the reload in progress: the upgrade is remembered and
        starts once the reload ends, as a second SIGHUP would (it used to be dropped)."""
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        pid_file = os.path.join(tmp, "arrpcd.pid")
        server = self.start("--workers", "2", "--pid-file", pid_file)
        os.kill(server.pid, signal.SIGHUP)
        os.kill(server.pid, signal.SIGUSR2)
        pid = new_master(pid_file, server.pid)
        self.assertTrue(pid, server.log())
        self.addCleanup(kill_quietly, pid)
        self.assertIn("the upgrade starts when the reload in progress ends", server.log())
        with server.connect() as c:
            self.assertEqual(c.call("after"), "after")

    def test_upgrade_runs_the_binary_now_on_disk(self):
        """A package upgrade renames a new binary over the old one; SIGUSR2 must start the new
        file, not the deleted one the running master still maps (/proc/self/exe)."""
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        binary, pid_file = os.path.join(tmp, "arrpcd"), os.path.join(tmp, "arrpcd.pid")
        shutil.copy2(harness.ARRPCD, binary)
        server = self.start("--pid-file", pid_file, binary=binary)
        shutil.copy2(harness.ARRPCD, binary + ".new")
        os.rename(binary + ".new", binary)  # as dpkg installs a file
        self.assertTrue(os.readlink("/proc/%d/exe" % server.pid).endswith(" (deleted)"))
        os.kill(server.pid, signal.SIGUSR2)
        pid = new_master(pid_file, server.pid)
        self.assertTrue(pid, server.log())
        self.addCleanup(kill_quietly, pid)
        self.assertEqual(os.readlink("/proc/%d/exe" % pid), binary)
        with server.connect() as c:
            self.assertEqual(c.call("after"), "after")


class ScalingTest(MasterCase):
    def test_ttin_ttou_under_load_fail_nothing(self):
        server = self.start("--workers", "2")
        load = Load(server.port, seconds=6)
        time.sleep(0.5)
        for sig, expect in ((signal.SIGTTIN, 3), (signal.SIGTTIN, 4), (signal.SIGTTOU, 3),
                            (signal.SIGTTOU, 2), (signal.SIGTTOU, 1), (signal.SIGTTIN, 2)):
            server.signal(sig)
            self.assertTrue(wait_until(lambda: len(children(server.pid)) == expect),
                            "%s: want %d workers, have %s" % (sig, expect, children(server.pid)))
            time.sleep(0.3)
        self.assert_no_failures(load.result())


class FaultTest(MasterCase):
    def test_crash_fails_only_its_request(self):
        """The crashing request gets an error; every connection, those of the crashed worker
        included, goes on (test_crash.py tests this under load)."""
        server = self.start("--workers", "2")
        bystanders = [server.connect() for _ in range(8)]
        for c in bystanders:
            self.addCleanup(c.close)
        for c in bystanders:
            c.call({"pid": 1})
        with server.connect() as victim:
            crashed = victim.call({"pid": 1})
            victim.send({"crash": True})
            self.assertEqual(victim.recv(),
                             "arrpc.error.RpcException: the handler crashed (SIGSEGV)")
        for c in bystanders:  # on either worker: they see nothing
            self.assertEqual(c.call("still here"), "still here")
        self.assertTrue(wait_until(lambda: len(children(server.pid)) == 2
                                   and crashed not in children(server.pid)))
        with server.connect() as fresh:
            self.assertEqual(fresh.call("served"), "served")

    def test_killed_worker_loses_only_its_connections_and_queue_survives(self):
        server = self.start("--workers", "4")
        load = Load(server.port, seconds=4, connections=16)
        time.sleep(0.5)
        victim = children(server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        report = load.result()
        # Only requests in flight on the victim's connections may fail: at most one each.
        self.assertLessEqual(report["errors"], 16, report["errors_by_kind"])
        self.assertGreater(report["replies"], 1000)

    def test_connections_queued_on_a_stopped_worker_are_accepted_by_its_replacement(self):
        server = self.start("--workers", "2")
        workers = children(server.pid)
        stopped = workers[0]
        os.kill(stopped, signal.SIGSTOP)
        results, errors = [], []

        def client(i):
            try:
                with harness.Conn(server.port, timeout=WAIT_S) as c:
                    results.append(c.call({"echo": i}) == i)
            except OSError as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # the stopped worker's share sits in its socket's queue
        os.kill(stopped, signal.SIGKILL)
        for t in threads:
            t.join(timeout=WAIT_S)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 24)
        self.assertTrue(all(results))

    def test_worker_failing_at_start_is_backed_off(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        plugin = os.path.join(tmp, "handler.so")
        shutil.copy(harness.DEMO_PLUGIN, plugin)
        server = self.start("--workers", "1", handler=plugin)
        with open(plugin + ".new", "wb") as f:
            f.write(b"broken")
        os.rename(plugin + ".new", plugin)  # every new worker now fails to load it
        with server.connect() as c:
            c.send({"crash": True})
            c.recv()  # the error; the connection waits for a worker that can start
        time.sleep(5.0)
        starts = server.log().count("before it was ready")
        # Doubling from 100 ms: about 6 tries in 5 s. A fork storm would be thousands.
        self.assertGreaterEqual(starts, 2, server.log())
        self.assertLessEqual(starts, 10, server.log())
        self.assertTrue(alive(server.pid))

    def test_stuck_handler_worker_is_killed_and_others_serve(self):
        server = self.start("--workers", "2", "--handler-timeout", "1")
        stuck = server.connect()
        self.addCleanup(stuck.close)
        stuck_pid = stuck.call({"pid": 1})
        started = time.monotonic()
        stuck.send({"sleep": 60})
        self.assertTrue(stuck.closed_by_server(timeout=WAIT_S))
        self.assertLess(time.monotonic() - started, WAIT_S)
        self.assertIn("busy in its handler", server.log())
        self.assertTrue(wait_until(lambda: stuck_pid not in children(server.pid)
                                   and len(children(server.pid)) == 2))
        for i in range(10):
            with server.connect() as c:
                self.assertEqual(c.call(i), i)

    def test_idle_worker_is_never_killed(self):
        server = self.start("--workers", "1", "--handler-timeout", "1")
        with server.connect() as c:
            pid = c.call({"pid": 1})
            time.sleep(2.5)
            self.assertEqual(c.call({"pid": 1}), pid)


class StopTest(MasterCase):
    def test_term_answers_requests_in_flight_and_exits_0(self):
        server = self.start("--workers", "2")
        conns = [server.connect() for _ in range(6)]
        for c in conns:
            self.addCleanup(c.close)
            c.send({"sleep": 1})
        time.sleep(0.3)
        server.signal(signal.SIGTERM)
        for c in conns:
            self.assertEqual(c.recv(), "slept")
        self.assertEqual(server.wait(timeout=WAIT_S), 0)

    def test_quit_stops_at_once(self):
        server = self.start("--workers", "2")
        c = server.connect()
        self.addCleanup(c.close)
        c.send({"sleep": 30})
        time.sleep(0.2)
        server.signal(signal.SIGQUIT)
        self.assertEqual(server.wait(timeout=5), 0)
        self.assertTrue(c.closed_by_server(timeout=5))


class SystemdTest(MasterCase):
    def test_socket_activation_and_notify(self):
        """LISTEN_FDS gives the socket (as systemd does); NOTIFY_SOCKET hears READY and reloads."""
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        notify_path = os.path.join(tmp, "notify")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(WAIT_S)
        self.addCleanup(notify.close)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # ReusePort=yes
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]

        def as_systemd():
            os.dup2(listener.fileno(), 3)
            os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()),
                              NOTIFY_SOCKET=notify_path)
        log = tempfile.TemporaryFile()
        self.addCleanup(log.close)

        def log_text():
            log.seek(0)
            return log.read().decode(errors="replace")
        proc = subprocess.Popen([harness.ARRPCD, "--listen", "127.0.0.1:1", "--workers", "2",
                                 "--handler", harness.DEMO_PLUGIN], preexec_fn=as_systemd,
                                # fds are closed after preexec_fn runs: keep 3 open
                                pass_fds=(3, listener.fileno()), stderr=log)
        self.addCleanup(lambda: (kill_quietly(proc.pid), proc.wait()))
        listener.close()  # arrpcd holds it now
        ready = notify.recv(256).decode()
        self.assertIn("READY=1", ready)
        self.assertIn("MAINPID=%d" % proc.pid, ready)
        self.assertEqual(len(children(proc.pid)), 2)
        with harness.Conn(port) as c:
            self.assertEqual(c.call("activated"), "activated")
            proc.send_signal(signal.SIGHUP)
            self.assertIn("RELOADING=1", notify.recv(256).decode())
            self.assertIn("READY=1", notify.recv(256).decode())
            self.assertEqual(c.call("reloaded"), "reloaded")
        proc.send_signal(signal.SIGTERM)
        self.assertIn("STOPPING=1", notify.recv(256).decode())
        try:
            self.assertEqual(proc.wait(timeout=WAIT_S), 0, log_text())
        except subprocess.TimeoutExpired:
            self.fail("arrpcd did not stop in %ss; workers %s:\n%s" % (
                WAIT_S, children(proc.pid), log_text()))


if __name__ == "__main__":
    harness.main()
