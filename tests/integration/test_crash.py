"""A handler crash fails only its own request: the crashing client gets
"arrpc.error.RpcException: the handler crashed (SIG...)", and every other connection of the
worker moves to another worker with its unsent replies and unanswered bytes (workers/rescue.c,
master/crash.c).

Load comes from arrpc-bench --verify (c=16, P=4) in its own process: every failed request counts, and a
connection the server closes counts as "closed". Nothing here asserts a timing; every wait is
bounded, and every process is stopped by PID.
"""
import os
import socket
import time
import unittest

import msgpack

import harness
from harness import Server
from test_master import WAIT_S, Load, alive, children, wait_until
from test_metrics import metrics_port, scrape, total

KINDS = {"SIGSEGV": "SIGSEGV", "SIGBUS": "SIGBUS", "SIGFPE": "SIGFPE", "SIGILL": "SIGILL",
         "abort": "SIGABRT"}
LOAD_S = 2.5       # each load's duration: 16 connections, 4 requests in flight on each, as the
                   # issue measured, so that replies and requests are in flight at the crash
CRASH_AFTER_S = 1  # into the load


# Under AddressSanitizer the worker's own crash handlers must run, not ASan's (which would
# report the fault and exit): a sanitized build keeps its other options (tests/CMakeLists.txt).
ASAN_CRASH_OPTIONS = ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""),
    "handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0"]))


def crash_error(signal_name):
    return "arrpc.error.RpcException: the handler crashed (%s)" % signal_name


class CrashCase(unittest.TestCase):
    def start(self, *args, tls=False):
        server = Server("--metrics-listen", "127.0.0.1:0", *args, tls=tls,
                        env={"ASAN_OPTIONS": ASAN_CRASH_OPTIONS}).start()
        self.addCleanup(server.stop)
        return server, metrics_port(server)

    def counted(self, mport, restarts, saved_at_least=1, lost=0):
        """The master counts the crashes, and the dying workers what they saved and lost."""
        def settled():
            s = scrape(mport)
            return total(s, "arrpc_server_worker_restarts_total", cause="crash") == restarts
        self.assertTrue(wait_until(settled))
        s = scrape(mport)
        saved = total(s, "arrpc_server_crash_connections_total", result="saved")
        print("crash connections: saved %d, lost %d" % (
            saved, total(s, "arrpc_server_crash_connections_total", result="lost")))
        self.assertGreaterEqual(saved, saved_at_least)
        self.assertEqual(total(s, "arrpc_server_crash_connections_total", result="lost"), lost)

    def assert_nothing_failed(self, report):
        self.assertGreater(report["replies"], 0)
        self.assertEqual(report["errors"], 0, report["errors_by_kind"])
        self.assertEqual(report["errors_by_kind"]["closed"], 0)

    def crash_and_go_on(self, server, kind, signal_name):
        """One client crashes its worker: it gets the error, then goes on being served."""
        with server.connect() as c:
            c.send({"crash": kind})
            self.assertEqual(c.recv(), crash_error(signal_name))
            self.assertEqual(c.call({"echo": "after"}), "after")


class UnderLoadTest(CrashCase):
    def crash_under_load(self, workers, kind, *extra):
        server, mport = self.start("--workers", str(workers), *extra)
        load = Load(server.port, seconds=LOAD_S, pipeline=4)
        time.sleep(CRASH_AFTER_S)
        self.crash_and_go_on(server, kind, KINDS[kind])
        print("%s, --workers %d%s:" % (kind, workers, "".join(" " + a for a in extra)), end=" ")
        report = load.result()
        self.assert_nothing_failed(report)
        self.counted(mport, restarts=1)

    def test_each_kind_with_one_worker(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.crash_under_load(1, kind)

    def test_each_kind_with_two_workers(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.crash_under_load(2, kind)

    def test_each_kind_on_handler_threads(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                self.crash_under_load(1, kind, "--threads", "4")


class ThreadsTest(CrashCase):
    def test_two_threads_crash_at_once(self):
        """Two handler threads crash together: both requests get the error naming their own
        signal; the load on the other threads sees nothing."""
        server, mport = self.start("--workers", "1", "--threads", "4")
        load = Load(server.port, seconds=LOAD_S, pipeline=4)
        time.sleep(CRASH_AFTER_S)
        clients = [server.connect(), server.connect()]
        for c in clients:
            self.addCleanup(c.close)
        clients[0].send({"crash_after": [0.3, "SIGSEGV"]})
        clients[1].send({"crash_after": [0.3, "SIGBUS"]})
        self.assertEqual(clients[0].recv(), crash_error("SIGSEGV"))
        self.assertEqual(clients[1].recv(), crash_error("SIGBUS"))
        for c in clients:
            self.assertEqual(c.call({"echo": 1}), 1)
        print("two threads crash at once:", end=" ")
        self.assert_nothing_failed(load.result())
        self.counted(mport, restarts=1)


    def test_a_crash_on_the_loop_thread_after_one_on_a_handler_thread(self):
        """The first call runs on the loop's thread, which the standby takes the loop from while
        the call sleeps; the second goes to a handler thread and crashes first. The rescue lets
        the first call go on until it crashes too, and answers both with their errors (it used
        to stop that thread where it was, and its connection was lost)."""
        server, mport = self.start("--workers", "1", "--threads", "4")
        clients = [server.connect(), server.connect()]
        for c in clients:
            self.addCleanup(c.close)
        clients[0].send({"crash_after": [0.6, "SIGSEGV"]})
        time.sleep(0.1)
        clients[1].send({"crash_after": [0.1, "SIGBUS"]})
        self.assertEqual(clients[1].recv(), crash_error("SIGBUS"))
        self.assertEqual(clients[0].recv(), crash_error("SIGSEGV"))
        for c in clients:
            self.assertEqual(c.call({"echo": 1}), 1)
        self.counted(mport, restarts=1)


class HalfwayTest(CrashCase):
    def new_worker(self, server, old):
        self.assertTrue(wait_until(lambda: not alive(old) and any(
            p != old for p in children(server.pid))))

    def test_half_written_replies_arrive_whole(self):
        """A client that does not read has replies waiting in the worker (and requests the
        worker has read but holds back behind them); after a crash it reads them all, whole
        and in order."""
        for threads in ("0", "4"):
            with self.subTest(threads=threads):
                server, mport = self.start("--workers", "1", "--threads", threads)
                slow = socket.socket()
                self.addCleanup(slow.close)
                slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                slow.connect(("127.0.0.1", server.port))
                slow.settimeout(WAIT_S)
                sizes = [600000 + i for i in range(6)]  # ~3.6 MB: more than the sockets hold
                slow.sendall(b"".join(msgpack.packb({"repeat": ["x", n]}) for n in sizes))
                time.sleep(0.5)  # read and answered as far as the output's high-water mark
                with server.connect() as c:
                    old = c.call({"pid": 1})
                self.crash_and_go_on(server, "SIGSEGV", "SIGSEGV")
                unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 26)
                replies = []
                while len(replies) < len(sizes):
                    data = slow.recv(1 << 20)
                    self.assertTrue(data, "closed after %d replies" % len(replies))
                    unpacker.feed(data)
                    replies.extend(unpacker)
                self.assertEqual([len(r) for r in replies], sizes)
                self.assertTrue(all(r == "x" * len(r) for r in replies))
                self.new_worker(server, old)
                self.counted(mport, restarts=1, saved_at_least=2)

    def test_half_read_request_is_answered(self):
        """Half a request read by the crashed worker; the rest, sent afterwards, completes it."""
        for threads in ("0", "4"):
            with self.subTest(threads=threads):
                server, mport = self.start("--workers", "1", "--threads", threads)
                request = msgpack.packb({"echo": "y" * 100000})
                half = server.connect()
                self.addCleanup(half.close)
                old = half.call({"pid": 1})
                half.send_raw(request[:len(request) // 2])
                time.sleep(0.3)  # read by the worker: the start of a request
                self.crash_and_go_on(server, "SIGSEGV", "SIGSEGV")
                self.new_worker(server, old)
                half.send_raw(request[len(request) // 2:])
                self.assertEqual(half.recv(), "y" * 100000)
                self.assertNotEqual(half.call({"pid": 1}), old)
                self.counted(mport, restarts=1, saved_at_least=2)


class LostTest(CrashCase):
    def test_tls_connections_close_and_count_lost(self):
        """TLS state lives in the worker: its connections close, as before, and are counted
        lost, the crashing one among them."""
        server, mport = self.start("--workers", "1", tls=True)
        bystander = server.connect()
        self.addCleanup(bystander.close)
        self.assertEqual(bystander.call({"echo": 1}), 1)
        with server.connect() as c:
            c.send({"crash": True})
            self.assertTrue(c.closed_by_server(timeout=WAIT_S))
        self.assertTrue(bystander.closed_by_server(timeout=WAIT_S))
        self.counted(mport, restarts=1, saved_at_least=0, lost=2)

    def test_stuck_handler_loses_only_its_connection(self):
        """The master's SIGABRT to a worker stuck past --handler-timeout is no crash of a call:
        the stuck call's connection closes (counted lost), every other one lives on."""
        for threads in ("0", "4"):
            with self.subTest(threads=threads):
                server, mport = self.start("--workers", "1", "--threads", threads,
                                           "--handler-timeout", "1")
                bystander = server.connect()
                self.addCleanup(bystander.close)
                old = bystander.call({"pid": 1})
                with server.connect() as stuck:
                    stuck.send({"sleep": 30})
                    self.assertTrue(stuck.closed_by_server(timeout=WAIT_S))
                self.assertEqual(bystander.call({"echo": 2}), 2)
                self.assertNotEqual(bystander.call({"pid": 1}), old)
                self.assertTrue(wait_until(lambda: total(
                    scrape(mport), "arrpc_server_worker_restarts_total", cause="timeout") == 1))
                s = scrape(mport)
                self.assertEqual(total(s, "arrpc_server_crash_connections_total",
                                       result="lost"), 1)
                self.assertEqual(total(s, "arrpc_server_crash_connections_total",
                                       result="saved"), 1)

    def test_sigkill_loses_connections_and_counts_them(self):
        """A SIGKILL leaves no time to save anything: the master counts the connections the
        worker had open as lost."""
        server, mport = self.start("--workers", "1")
        c = server.connect()
        self.addCleanup(c.close)
        pid = c.call({"pid": 1})
        os.kill(pid, 9)
        self.assertTrue(c.closed_by_server(timeout=WAIT_S))
        self.counted(mport, restarts=1, saved_at_least=0, lost=1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
