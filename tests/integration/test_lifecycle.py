"""test_lifecycle.py -- arrpcd as a program: options and exit codes, graceful stop on SIGTERM,
the connection limit and the idle timeout."""
import signal
import socket
import struct
import time
import unittest

import harness
from harness import DEMO_PLUGIN, Server, run_arrpcd

EXIT_USAGE = 2
PROMPT_EXIT_S = 5.0        # "promptly": far above what a stop should take, far below the drain
NANOSLEEP_SYSCALLS = {35, 230}  # x86-64 nanosleep, clock_nanosleep


def wait_until_handler_sleeps(server, timeout=3.0):
    """Waits (bounded) until arrpcd is inside the demo's nanosleep, so a request is surely in
    flight; falls back to a short pause where /proc/PID/syscall cannot be read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nr = server.current_syscall()
        if nr is None:
            time.sleep(0.2)
            return
        if nr in NANOSLEEP_SYSCALLS:
            return
        time.sleep(0.005)


class GracefulStopTest(unittest.TestCase):
    def test_sigterm_with_request_in_flight_answers_then_exits_0(self):
        with Server() as server, server.connect() as c:
            c.send({"sleep": 1})
            wait_until_handler_sleeps(server)
            server.signal(signal.SIGTERM)
            self.assertEqual(c.recv(), "slept")
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S + 1), 0)
            self.assertTrue(c.closed_by_server(timeout=2))

    def test_sigterm_right_after_send_answers_then_exits_0(self):
        with Server() as server, server.connect() as c:
            self.assertEqual(c.call("ready"), "ready")
            c.send({"sleep": 0.2})
            server.signal(signal.SIGTERM)
            self.assertEqual(c.recv(), "slept")
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S), 0)

    def test_sigterm_answers_pipelined_requests_already_read(self):
        with Server() as server, server.connect() as c:
            c.send_raw(c.pack({"sleep": 0.5}) + c.pack({"echo": "second"}))
            wait_until_handler_sleeps(server)
            server.signal(signal.SIGTERM)
            self.assertEqual(c.recv(), "slept")
            self.assertEqual(c.recv(), "second")
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S), 0)

    def test_sigterm_with_idle_connections_exits_0_promptly(self):
        with Server() as server:
            conns = [server.connect() for _ in range(5)]
            try:
                for i, c in enumerate(conns):
                    self.assertEqual(c.call(i), i)
                started = time.monotonic()
                server.signal(signal.SIGTERM)
                self.assertEqual(server.wait(timeout=PROMPT_EXIT_S), 0)
                self.assertLess(time.monotonic() - started, PROMPT_EXIT_S)
                for c in conns:
                    self.assertTrue(c.closed_by_server(timeout=2))
            finally:
                for c in conns:
                    c.close()

    def test_sigint_exits_0(self):
        with Server() as server:
            server.signal(signal.SIGINT)
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S), 0)

    def test_port_closed_after_exit(self):
        with Server() as server:
            server.signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S), 0)
            with self.assertRaises(ConnectionRefusedError):
                server.connect().close()

    def test_request_half_sent_at_sigterm_is_answered_when_completed(self):
        with Server() as server, server.connect() as c:
            request = c.pack({"echo": "completed during the drain"})
            c.send_raw(request[:4])
            time.sleep(0.1)
            server.signal(signal.SIGTERM)
            time.sleep(0.2)
            c.send_raw(request[4:])
            self.assertEqual(c.recv(), "completed during the drain")
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S), 0)

    def test_drain_timeout_closes_a_half_sent_request(self):
        with Server("--drain-timeout", "1") as server, server.connect() as c:
            c.send_raw(c.pack({"echo": "never finished"})[:5])
            time.sleep(0.1)
            started = time.monotonic()
            server.signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S + 1), 0)
            self.assertGreaterEqual(time.monotonic() - started, 0.5)
            self.assertTrue(c.closed_by_server(timeout=2))


class CommandLineTest(unittest.TestCase):
    def test_help_exits_0_and_mentions_listen(self):
        status, out, _ = run_arrpcd("--help")
        self.assertEqual(status, 0)
        self.assertIn("--listen", out)
        self.assertIn("--handler", out)

    def test_version_exits_0(self):
        status, out, _ = run_arrpcd("--version")
        self.assertEqual(status, 0)
        self.assertTrue(out.startswith("arrpcd "), out)

    def test_bad_arguments_exit_2(self):
        cases = [
            ["--bogus"],
            ["--listen", "127.0.0.1:0"],  # no --handler
            ["--handler", "echo", "--listen", "no-port"],
            ["--handler", "echo", "--listen", "127.0.0.1:65536"],
            ["--handler", "echo", "--max-depth", "0"],
            ["--handler", "echo", "--max-depth", "10001"],
            ["--handler", "echo", "--max-message", "-1"],
            ["--handler", "echo", "--max-message", "15"],
            ["--handler", "echo", "--max-connections", "abc"],
            ["--handler", "echo", "--idle-timeout", "1.5"],
            ["--handler", "echo", "stray"],
            ["--handler"],
        ]
        for args in cases:
            with self.subTest(args=args):
                status, _, err = run_arrpcd(*args)
                self.assertEqual(status, EXIT_USAGE, err)
                self.assertIn("usage:", err)

    def test_unknown_handler_exits_nonzero_with_message(self):
        status, _, err = run_arrpcd("--listen", "127.0.0.1:0", "--handler", "no-such-handler")
        self.assertNotEqual(status, 0)
        self.assertIn("unknown handler 'no-such-handler'", err)

    def test_missing_plugin_exits_nonzero_with_message(self):
        status, _, err = run_arrpcd("--listen", "127.0.0.1:0", "--handler", "/nonexistent/x.so")
        self.assertNotEqual(status, 0)
        self.assertIn("cannot load handler plugin", err)
        self.assertIn("/nonexistent/x.so", err)

    def test_plugin_without_symbol_exits_nonzero_with_message(self):
        status, _, err = run_arrpcd("--listen", "127.0.0.1:0",
                                    "--handler", DEMO_PLUGIN + ":no_such_symbol")
        self.assertNotEqual(status, 0)
        self.assertIn("no symbol 'no_such_symbol'", err)

    def test_missing_secret_file_exits_nonzero_with_message(self):
        status, _, err = run_arrpcd("--listen", "127.0.0.1:0", "--handler", "echo",
                                    "--auth-secret-file", "/nonexistent/secret")
        self.assertNotEqual(status, 0)
        self.assertIn("/nonexistent/secret", err)

    def test_port_in_use_exits_nonzero_with_message(self):
        with Server() as server:
            status, _, err = run_arrpcd("--listen", "127.0.0.1:%d" % server.port,
                                        "--handler", "echo")
            self.assertNotEqual(status, 0)
            self.assertIn("cannot listen", err)
            with server.connect() as c:
                self.assertEqual(c.call("unharmed"), "unharmed")

    def test_debug_logs_connections_and_requests(self):
        with Server("--debug") as server:
            with server.connect() as c:
                self.assertEqual(c.call({"fail": "x"}), harness.RPC_PREFIX + "x")
            server.signal(signal.SIGTERM)
            self.assertEqual(server.wait(timeout=PROMPT_EXIT_S), 0)
            log = server.log()
        self.assertIn("connection from 127.0.0.1:", log)
        self.assertIn("rpc error", log)

    def test_builtin_echo_handler_serves(self):
        with Server(handler="echo") as server, server.connect() as c:
            self.assertEqual(c.call({"echo": 1}), {"echo": 1})


class ConnectionLimitTest(unittest.TestCase):
    # The limit is per worker process: one worker makes it the server's.
    def test_sixth_connection_closed_while_five_keep_working(self):
        with Server("--max-connections", "5", "--workers", "1") as server:
            conns = [server.connect() for _ in range(5)]
            try:
                for i, c in enumerate(conns):
                    self.assertEqual(c.call(i), i)
                with server.connect() as sixth:
                    self.assertTrue(sixth.closed_by_server(timeout=5))
                for i, c in enumerate(conns):
                    self.assertEqual(c.call({"echo": i}), i)
            finally:
                for c in conns:
                    c.close()

    def test_slot_freed_by_a_close_is_reusable(self):
        with Server("--max-connections", "2", "--workers", "1") as server:
            first, second = server.connect(), server.connect()
            try:
                self.assertEqual(first.call(1), 1)
                self.assertEqual(second.call(2), 2)
                first.close()
                reply = None
                for _ in range(50):  # the server notices the close within a loop iteration
                    try:
                        with server.connect() as third:
                            reply = third.call(3)
                        break
                    except (EOFError, ConnectionResetError):
                        time.sleep(0.05)
                self.assertEqual(reply, 3)
            finally:
                first.close()
                second.close()


class IdleTimeoutTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--idle-timeout", "1").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_idle_connection_closed_after_timeout(self):
        with self.server.connect() as c:
            self.assertEqual(c.call("hi"), "hi")
            started = time.monotonic()
            self.assertTrue(c.closed_by_server(timeout=6))
            elapsed = time.monotonic() - started
            self.assertGreaterEqual(elapsed, 0.5)
            self.assertLess(elapsed, 6)

    def test_never_used_connection_closed_after_timeout(self):
        with self.server.connect() as c:
            self.assertTrue(c.closed_by_server(timeout=6))

    def test_active_connection_kept_open(self):
        with self.server.connect() as c:
            for i in range(8):  # 2.4 s of traffic, every gap well under the timeout
                self.assertEqual(c.call(i), i)
                time.sleep(0.3)

    def test_idle_time_counts_from_the_reply_not_the_request(self):
        """A handler slower than the idle timeout: the client was idle only for the pause after
        its reply, so the connection must still be open."""
        with self.server.connect() as c:
            self.assertEqual(c.call({"sleep": 1.5}), "slept")
            time.sleep(0.4)
            self.assertEqual(c.call("after"), "after")


class HugeIdleTimeoutTest(unittest.TestCase):
    def test_huge_idle_timeout_refused_or_honoured_not_wrapped(self):
        """4294968 s is 4294968000 ms: wrapped to 32 bits it would be 704 ms."""
        try:
            server = Server("--idle-timeout", "4294968").start()
        except RuntimeError as e:
            self.assertIn("exited with %d" % EXIT_USAGE, str(e))
            return
        self.addCleanup(server.stop)
        with server.connect() as c:
            self.assertEqual(c.call(1), 1)
            self.assertFalse(c.closed_by_server(timeout=1.5))
            self.assertEqual(c.call(2), 2)

    def test_largest_idle_timeout_accepted(self):
        with Server("--idle-timeout", "4294967") as server, server.connect() as c:
            self.assertEqual(c.call(1), 1)


class SocketHygieneTest(unittest.TestCase):
    def test_reset_by_client_does_not_hurt_others(self):
        with Server() as server, server.connect() as other:
            for _ in range(10):
                c = server.connect()
                c.send_raw(c.pack({"echo": "x" * 100000}))
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.close()
            self.assertEqual(other.call("fine"), "fine")
            self.assertIsNone(server.proc.poll())


if __name__ == "__main__":
    harness.main()
