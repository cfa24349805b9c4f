"""A Python server with workers=2 in the foreground (the script's process is the master) is
reloaded with SIGHUP and upgraded with SIGUSR2 while clients keep sending: no request fails, and
new workers (after the upgrade, a new master) answer."""
import os
import signal
import socket
import threading
import time

import pyharness
from pyharness import arrpc, harness

CLIENTS = 4             # connections sending back to back during the signals
CHANGE_TIMEOUT = 30.0   # seconds for a reload or an upgrade to show
SERVER = """
import os, sys, arrpc
def handler(message):
    return [os.getpid(), message]
server = arrpc.Server("127.0.0.1", int(sys.argv[1]), handler, workers=2, pid_file=sys.argv[2])
server.start()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class Load:
    """CLIENTS threads, each one arrpc.Client sending until stopped; failures are kept."""

    def __init__(self, port):
        self.port = port
        self.stop_flag = threading.Event()
        self.failures, self.pids, self.sent = [], set(), 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(CLIENTS)]
        for t in self.threads:
            t.start()

    def run(self, i):
        cli = arrpc.Client("127.0.0.1", self.port, timeout=harness.IO_TIMEOUT)
        n = 0
        while not self.stop_flag.is_set():
            try:
                pid, echoed = cli.send([i, n])
                ok = echoed == [i, n]
            except Exception as e:  # every failure counts, whatever its kind
                with self.lock:
                    self.failures.append(repr(e))
                continue
            with self.lock:
                self.pids.add(pid)
                self.sent += 1
                if not ok:
                    self.failures.append("wrong reply to %r" % ([i, n],))
            n += 1

    def new_pids(self, seen):
        with self.lock:
            return self.pids - seen

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(harness.IO_TIMEOUT)


def wait_until(check, what):
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Reload(harness.unittest.TestCase):
    def test_hup_and_usr2_under_load(self):
        port = free_port()
        pid_file = os.path.join(pyharness.tempfile.mkdtemp(prefix="arrpc-reload-"), "pid")
        script = pyharness.Script(SERVER, args=(str(port), pid_file))
        self.addCleanup(script.stop)
        wait_until(lambda: read_pid(pid_file) == script.proc.pid, "the master's pid file")
        load = Load(port)
        try:
            wait_until(lambda: load.new_pids(set()), "a worker answering")
            first = set(load.pids)
            os.kill(script.proc.pid, signal.SIGHUP)
            wait_until(lambda: load.new_pids(first), "new workers after SIGHUP")
            reloaded = set(load.pids)
            os.kill(script.proc.pid, signal.SIGUSR2)
            wait_until(lambda: read_pid(pid_file) not in (0, script.proc.pid),
                       "the new master's pid file")
            new_master = read_pid(pid_file)
            self.addCleanup(self.stop_master, new_master)
            wait_until(lambda: script.proc.poll() is not None, "the old master to exit")
            wait_until(lambda: load.new_pids(reloaded), "workers of the new master")
            time.sleep(0.3)
        finally:
            load.stop()
        self.assertEqual(load.failures, [], script.output())
        self.assertGreater(load.sent, 100)
        self.assertEqual(script.proc.returncode, 0, script.output())

    def stop_master(self, pid):
        """The new master is not our child: SIGTERM, then wait for it to be gone."""
        if alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + harness.STOP_TIMEOUT
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    pyharness.main()
