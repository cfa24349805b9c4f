"""Handler threads and deferred replies: a slow call holds up only its own connection; one
connection's replies keep request order whatever mix of slow, fast and deferred calls it pipelines;
deferred calls are answered from the plugin's own thread, a second answer is refused, an
unanswered one times out with an error and its late answer is dropped; a reload with calls running
fails nothing. Timings are never asserted: "not delayed" is checked by order of arrival."""
import os
import shutil
import signal
import tempfile
import threading
import time
import unittest

import harness
from harness import Server
from test_master import Load, MasterCase, alive, kill_quietly, new_master, wait_until

DEFERRED = "deferred"


def pipeline(conn, requests):
    conn.send_raw(b"".join(conn.pack(r) for r in requests))
    return [conn.recv() for _ in requests]


def nothing_to_read(conn):
    """True when no byte of a reply has arrived on conn yet (without waiting for one)."""
    conn.sock.setblocking(False)
    try:
        early = conn.sock.recv(1)
    except BlockingIOError:
        early = b""
    finally:
        conn.sock.setblocking(True)
    return early == b""


class ThreadsCase(unittest.TestCase):
    def start(self, *args):
        server = Server(*args).start()
        self.addCleanup(server.stop)
        return server


class OrderTest(ThreadsCase):
    REQUESTS = [{"sleep": 0.2}, {"echo": 1}, {"defer": 0.1}, {"echo": 2}, {"defer": 0.0},
                {"sleep": 0.0}, {"echo": 3}]
    EXPECTED = ["slept", 1, DEFERRED, 2, DEFERRED, "slept", 3]

    def test_pipelined_mix_answers_in_order_with_threads(self):
        server = self.start("--workers", "1", "--threads", "4")
        with server.connect() as c:
            self.assertEqual(pipeline(c, self.REQUESTS), self.EXPECTED)

    def test_pipelined_mix_answers_in_order_inline(self):
        server = self.start("--workers", "1", "--threads", "0")
        with server.connect() as c:
            self.assertEqual(pipeline(c, self.REQUESTS), self.EXPECTED)

    def test_in_process_server_runs_threads_too(self):
        server = self.start("--workers", "0", "--threads", "2")
        with server.connect() as c:
            self.assertEqual(pipeline(c, self.REQUESTS), self.EXPECTED)


class StallTest(ThreadsCase):
    def test_a_slow_call_does_not_hold_up_another_connection(self):
        """With threads, a fast request on a second connection is answered while the first
        connection's call still sleeps: its reply arrives before the slow one's."""
        server = self.start("--workers", "1", "--threads", "4")
        with server.connect() as slow, server.connect() as fast:
            slow.send({"sleep": 1.0})
            time.sleep(0.1)
            self.assertEqual(fast.call({"echo": "fast"}), "fast")
            self.assertTrue(nothing_to_read(slow), "the slow reply came before the fast one")
            self.assertEqual(slow.recv(), "slept")

    def test_a_slow_call_in_a_pipelined_batch_holds_up_only_its_connection(self):
        """A connection's pipelined requests reach a handler thread in batches (16 at most),
        run in order: a slow call among them holds up the requests behind it on its own
        connection, and no other connection; 200 replies come back in request order."""
        server = self.start("--workers", "1", "--threads", "4")
        requests = [{"echo": i} for i in range(5)] + [{"sleep": 1.0}] + \
            [{"echo": i} for i in range(5, 200)]
        expected = list(range(5)) + ["slept"] + list(range(5, 200))
        with server.connect() as batched, server.connect() as other:
            batched.send_raw(b"".join(batched.pack(r) for r in requests))
            self.assertEqual([batched.recv() for _ in range(5)], list(range(5)))
            self.assertEqual(other.call({"echo": "other"}), "other")  # while the batch sleeps
            self.assertTrue(nothing_to_read(batched),
                            "the slow call's reply came before the other's")
            self.assertEqual([batched.recv() for _ in requests[5:]], expected[5:])

    def test_deferred_calls_do_not_hold_the_loop(self):
        """200 deferred calls, 10 pipelined on each of 20 connections, inline (--threads 0):
        every one is answered, while the worker goes on answering others."""
        server = self.start("--workers", "1", "--threads", "0")
        conns = [server.connect() for _ in range(20)]
        try:
            for c in conns:
                c.send_raw(b"".join(c.pack({"defer": 0.2}) for _ in range(10)))
            with server.connect() as other:
                self.assertEqual(other.call({"echo": "meanwhile"}), "meanwhile")
            replies = [c.recv() for c in conns for _ in range(10)]
        finally:
            for c in conns:
                c.close()
        self.assertEqual(replies, [DEFERRED] * 200)


class DeferredTest(ThreadsCase):
    def test_a_second_answer_is_refused(self):
        server = self.start("--workers", "1")
        with server.connect() as c:
            self.assertEqual(c.call({"answer_twice": 1}), DEFERRED)
            self.assertEqual(c.call({"echo": "next"}), "next")
        self.assertIn("a second answer to one deferred call returned -13", server.log())

    def test_an_answer_that_beats_its_handler_thread_back_is_kept(self):
        """On a handler thread, the plugin's timer can answer {"defer": 0} before the thread has
        returned the call to the loop; that answer must not be taken for a late one. (It was:
        the connection then waited for an answer already dropped.)"""
        server = self.start("--workers", "1", "--threads", "2")
        with server.connect() as c:
            self.assertEqual(pipeline(c, [{"defer": 0}] * 300), [DEFERRED] * 300)

    def test_an_unanswered_call_times_out_and_its_late_answer_is_dropped(self):
        server = self.start("--workers", "1", "--handler-timeout", "1")
        with server.connect() as c:
            reply = c.call({"defer": 2.5})
            self.assertEqual(reply, harness.RPC_PREFIX + "handler timed out")
            time.sleep(2.0)  # the plugin answers now; nothing may reach the client
            self.assertEqual(c.call({"echo": "after"}), "after")
        self.assertIn("deferred call was not answered", server.log())
        with server.connect() as c:  # the worker lives on
            self.assertEqual(c.call({"echo": 1}), 1)

    def test_the_callers_address_outlives_the_handler(self):
        """arrpc_call_peer asked after arrpc_call_defer stays valid until the answer, which
        comes from the plugin's thread after the handler (and its call) are gone."""
        for threads in ("0", "2"):
            server = self.start("--workers", "1", "--threads", threads)
            with server.connect() as c:
                me = "127.0.0.1:%d" % c.sock.getsockname()[1]
                self.assertEqual(c.call({"defer_peer": 0.1}), me)

    def test_client_gone_before_the_answer(self):
        server = self.start("--workers", "1", "--threads", "2")
        with server.connect() as c:
            c.send({"defer": 0.3})
        time.sleep(0.6)
        with server.connect() as c:
            self.assertEqual(c.call({"echo": "still"}), "still")



class ResolverExampleTest(ThreadsCase):
    def test_the_blocking_example_answers_on_threads(self):
        server = Server("--workers", "1", "--threads", "4",
                        handler=os.path.join(harness.LIB_DIR, "arrpc-resolver.so:resolver"))
        server.start()
        self.addCleanup(server.stop)
        with server.connect() as c:
            self.assertIn("127.0.0.1", c.call({"resolve": "127.0.0.1"}))
            self.assertEqual(c.call({"other": 1}),
                             harness.RPC_PREFIX + 'expected {"resolve": "name"}')


class SlowCalls:
    """A client thread that keeps one threaded call and one deferred call going, one after the
    other, until stopped: calls running on the server whenever a signal comes."""

    def __init__(self, server):
        self.server, self.replies, self.stop = server, [], threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        with self.server.connect() as c:
            while not self.stop.is_set():
                self.replies.append(c.call({"sleep": 0.05}))
                self.replies.append(c.call({"defer": 0.05}))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


class ReloadTest(MasterCase):
    def test_reloads_with_calls_running_fail_nothing(self):
        server = self.start("--workers", "2", "--threads", "4")
        load = Load(server.port, seconds=5)
        with SlowCalls(server) as slow:
            for _ in range(3):
                time.sleep(1)
                self.hup_and_wait(server)
        self.assert_no_failures(load.result())
        self.assertEqual(set(slow.replies), {"slept", DEFERRED})

    def test_binary_upgrade_with_calls_running_fails_nothing(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        pid_file = os.path.join(tmp, "arrpcd.pid")
        server = self.start("--workers", "2", "--threads", "4", "--pid-file", pid_file)
        load = Load(server.port, seconds=5)
        masters = [server.pid]
        self.addCleanup(lambda: [kill_quietly(p) for p in masters])
        with SlowCalls(server) as slow:
            time.sleep(1)
            os.kill(server.pid, signal.SIGUSR2)
            pid = new_master(pid_file, server.pid)
            self.assertTrue(pid, server.log())
            masters.append(pid)
            time.sleep(1)
        self.assert_no_failures(load.result())
        self.assertEqual(set(slow.replies), {"slept", DEFERRED})
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not alive(pid)))


class StuckThreadTest(MasterCase):
    def test_a_call_stuck_on_a_thread_gets_its_worker_replaced(self):
        """The busy stamp of each handler thread is watched: a call stuck past
        --handler-timeout on one of 4 threads has its worker aborted and replaced, while the
        other threads went on serving until then."""
        server = self.start("--workers", "1", "--threads", "4", "--handler-timeout", "1")
        with server.connect() as c:
            pid = c.call({"pid": 1})
        stuck = server.connect()
        self.addCleanup(stuck.close)
        stuck.send({"sleep": 30})
        with server.connect() as c:  # another thread still answers meanwhile
            self.assertEqual(c.call({"pid": 1}), pid)
        self.assertTrue(wait_until(lambda: "busy in its handler" in server.log()), server.log())
        self.assertTrue(wait_until(lambda: not alive(pid)), server.log())

        def replaced():
            try:
                with server.connect() as c:
                    return c.call({"pid": 1}) != pid
            except OSError:
                return False
        self.assertTrue(wait_until(replaced), server.log())


if __name__ == "__main__":
    harness.main()
