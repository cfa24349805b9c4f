"""Ctrl-C (SIGINT) in a Python program using arrpc: a foreground arrpc.Server stops cleanly
(workers=0 raises KeyboardInterrupt out of start(); workers=2 makes the process the master, which
stops gracefully and returns from start()), whether the signal reaches the process alone or its
whole process group as a terminal's Ctrl-C does: no traceback but the KeyboardInterrupt the
script asked for, no worker process left, the port free for the next server. A Client waiting in
send() for a slow server, or between connect tries, raises KeyboardInterrupt while the server
still has not answered, and sends again afterwards; a signal handler or a second thread using
the client in the middle of its send is refused with RuntimeError.

Each program runs as a child in its own session (so that a group signal reaches only it) and is
signalled by PID; waits are bounded, never timed."""
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pyharness
from pyharness import arrpc, harness

STARTED = "listening on "  # the server scripts print this and their port once they accept
GONE_TIMEOUT = 10.0  # seconds for a signalled worker to disappear

SERVER = """
import sys, threading, time
import arrpc

def handler(message):
    if message == "slow":
        print("in the handler", flush=True)
        time.sleep(1)
    return message

server = arrpc.Server("127.0.0.1", 0, handler, workers=int(sys.argv[1]))
server._bind()
print("listening on", server.port, flush=True)
try:
    server.start()
    print("start returned", flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
"""

CLIENT = """
import sys
import arrpc
cli = arrpc.Client("127.0.0.1", int(sys.argv[1]), timeout=float(sys.argv[2]) or None,
                   con_max_retries=int(sys.argv[3]), retry_backoff=1.0)
try:
    print("sending", flush=True)
    print("reply", cli.send("block"), flush=True)
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
if sys.argv[4] == "again":
    print("then", cli.send("quick"), flush=True)
"""


class Child:
    """A script run by /usr/bin/python3 in its own session, stdout and stderr apart."""

    def __init__(self, source, *args):
        fd, self.path = tempfile.mkstemp(prefix="arrpc-int-", suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", self.path] + [str(a) for a in args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=pyharness.child_env(), start_new_session=True)

    def line(self):
        """The next line of its output (bounded: the child's exit ends it)."""
        return self.proc.stdout.readline().decode().strip()

    def interrupt(self, group):
        if group:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            os.kill(self.proc.pid, signal.SIGINT)

    def finish(self):
        """(exit status, stdout, stderr) once it has exited; killed by PID past the bound."""
        try:
            out, err = self.proc.communicate(timeout=pyharness.SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        os.unlink(self.path)
        return self.proc.returncode, out.decode(), err.decode()

    def children(self):
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            return [int(pid) for pid in f.read().split()]


def gone(pid):
    """True once pid has exited (and been reaped, or is a zombie of a dead parent)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pids):
    deadline = time.monotonic() + GONE_TIMEOUT
    while any(not gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if not gone(p)]


class ForegroundServer(harness.unittest.TestCase):
    def run_server(self, workers, group, in_flight=False):
        child = Child(SERVER, workers)
        self.addCleanup(lambda: child.proc.poll() is None and child.proc.kill())
        first = child.line()
        if not first.startswith(STARTED):
            self.fail("the server did not start: %s" % (child.finish(),))
        port = int(first.split()[-1])
        self.assertEqual(arrpc.Client("127.0.0.1", port).send("x"), "x")
        workers_pids = child.children() if workers else []
        self.assertEqual(len(workers_pids), workers)
        slow = {}
        if in_flight:
            caller = threading.Thread(target=lambda: slow.update(
                reply=arrpc.Client("127.0.0.1", port).send("slow")))
            caller.start()
            self.assertEqual(child.line(), "in the handler")
        child.interrupt(group)
        status, out, err = child.finish()
        if in_flight:
            caller.join(harness.IO_TIMEOUT)
            self.assertEqual(slow.get("reply"), "slow", "the call in flight was not answered")
        self.assertEqual(status, 0, err)
        self.assertIn("KeyboardInterrupt" if workers == 0 else "start returned", out)
        self.assertNotIn("Traceback", err)
        self.assertNotIn("Exception ignored", err)
        self.assertEqual(wait_gone(workers_pids), [], "workers left behind")
        # the port is free: the next server binds it and serves
        again = arrpc.Server("127.0.0.1", port, lambda m: m)
        again.start(background=True)
        try:
            self.assertEqual(arrpc.Client("127.0.0.1", port).send("again"), "again")
        finally:
            again.stop()

    def test_workers_0(self):
        self.run_server(0, group=False)

    def test_workers_0_ctrl_c_to_the_group(self):
        self.run_server(0, group=True)

    def test_workers_2(self):
        self.run_server(2, group=False)

    def test_workers_2_ctrl_c_to_the_group(self):
        self.run_server(2, group=True)

    def test_a_call_in_flight_is_answered_first(self):
        for workers in (0, 2):
            with self.subTest(workers=workers):
                self.run_server(workers, group=True, in_flight=True)


class WaitingClient(harness.unittest.TestCase):
    def setUp(self):
        self.release = threading.Event()  # the server's "block" calls wait for it
        self.entered = threading.Event()  # a "block" call is in the handler

        def handler(message):
            if message == "block":
                self.entered.set()
                self.release.wait(pyharness.SCRIPT_TIMEOUT)
            return message

        self.server = pyharness.serve(handler)
        self.addCleanup(self.server.stop)
        self.addCleanup(self.release.set)  # runs first: the handlers return, the stop is quick

    def interrupted(self, port, timeout, retries, then=""):
        """Runs the client script, and interrupts its send once the server holds the call (or,
        with nobody listening, a moment after it started sending, in the back-off)."""
        self.entered.clear()
        child = Child(CLIENT, port, timeout, retries, then or "-")
        self.addCleanup(lambda: child.proc.poll() is None and child.proc.kill())
        self.assertEqual(child.line(), "sending")
        if port == self.server.port:
            self.assertTrue(self.entered.wait(harness.IO_TIMEOUT), "the call never arrived")
        else:
            time.sleep(0.3)
        child.interrupt(group=False)
        return child.finish()

    def test_send_waiting_for_a_reply_raises_keyboard_interrupt(self):
        for timeout in (0, 60):
            with self.subTest(timeout=timeout):
                status, out, err = self.interrupted(self.server.port, timeout, 1)
                self.assertFalse(self.release.is_set())  # the server has not answered
                self.assertEqual(status, 0, err)
                self.assertIn("KeyboardInterrupt", out)
                self.assertNotIn("reply", out)
                self.assertNotIn("Traceback", err)

    def test_the_client_sends_again_afterwards(self):
        status, out, err = self.interrupted(self.server.port, 0, 1, then="again")
        self.assertEqual(status, 0, err)
        self.assertIn("KeyboardInterrupt", out)
        self.assertIn("then quick", out)

    def test_a_signal_handler_cannot_pull_the_client_from_under_its_send(self):
        """A Python signal handler runs while send() waits; one that uses the same client gets a
        RuntimeError (raised out of the send), never a client freed under the waiting call."""
        cli = arrpc.Client("127.0.0.1", self.server.port)
        previous = signal.signal(signal.SIGALRM, lambda *_: cli.close())
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            with self.assertRaises(RuntimeError) as caught:
                cli.send("block")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        self.assertIn("in the middle of a send", str(caught.exception))
        self.release.set()
        self.assertEqual(cli.send("quick"), "quick")

    def test_a_second_thread_on_the_same_client_is_refused(self):
        cli = arrpc.Client("127.0.0.1", self.server.port)
        first = threading.Thread(target=lambda: cli.send("block"))
        first.start()
        self.assertTrue(self.entered.wait(harness.IO_TIMEOUT))
        with self.assertRaises(RuntimeError):
            cli.send("quick")
        with self.assertRaises(RuntimeError):
            cli.send_batch(["quick"])
        self.release.set()
        first.join(harness.IO_TIMEOUT)
        self.assertEqual(cli.send("quick"), "quick")

    def test_connect_back_off_is_interrupted(self):
        with socket.socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            status, out, err = self.interrupted(port, 0, 30)  # 30 tries: minutes of back-off
        self.assertEqual(status, 0, err)
        self.assertIn("KeyboardInterrupt", out)
        self.assertNotIn("ConnectException", err)


if __name__ == "__main__":
    pyharness.main()
