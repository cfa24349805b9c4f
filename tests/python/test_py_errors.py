"""Exceptions of each kind reach the caller as arrpc 0.5.0 named them, and the client's fixes over
0.5.0 hold: no None after a server-side close, a timeout closes the connection."""
import socket
import threading
import time

import pyharness
from pyharness import arrpc, harness
from arrpc.error import (AuthException, ConnectException, RpcException, RpcTimeoutException)


def handler(message):
    if message == "rpc":
        raise RpcException("Something went wrong")
    if message == "value":
        raise ValueError("bad value")
    if message == "set":
        return {1, 2}
    if isinstance(message, dict) and "sleep" in message:
        time.sleep(message["sleep"])
    return message


class HandlerErrors(harness.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = pyharness.serve(handler)
        cls.client = pyharness.client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_rpc_exception_message_reaches_the_client_intact(self):
        with self.assertRaises(RpcException) as caught:
            self.client.send("rpc")
        self.assertEqual(str(caught.exception), "Something went wrong")

    def test_other_exceptions_name_their_type(self):
        with self.assertRaises(RpcException) as caught:
            self.client.send("value")
        self.assertEqual(str(caught.exception), "ValueError: bad value")

    def test_on_the_wire_as_050_clients_expect(self):
        with harness.Conn(self.server.port) as conn:
            self.assertEqual(conn.call("rpc"), harness.RPC_PREFIX + "Something went wrong")
            self.assertEqual(conn.call("value"), harness.RPC_PREFIX + "ValueError: bad value")
            self.assertEqual(conn.call("ok"), "ok")  # the connection goes on

    def test_unpackable_reply_names_the_type(self):
        with self.assertRaises(RpcException) as caught:
            self.client.send("set")
        self.assertIn("'set'", str(caught.exception))
        self.assertEqual(self.client.send("after"), "after")

    def test_batch_items_fail_in_their_place(self):
        replies = self.client.send_batch(["a", "rpc", "b", "set", "value"])
        self.assertEqual(replies[0], "a")
        self.assertIsInstance(replies[1], RpcException)
        self.assertEqual(str(replies[1]), "Something went wrong")
        self.assertEqual(replies[2], "b")
        self.assertIsInstance(replies[3], RpcException)
        self.assertEqual(str(replies[4]), "ValueError: bad value")

    def test_timeout_raises_and_closes_the_connection(self):
        with pyharness.client(self.server, timeout=0.1) as cli:
            with self.assertRaises(RpcTimeoutException):
                cli.send({"sleep": 1.0})
            # the late reply is never taken for the next request's
            self.assertEqual(cli.send("next"), "next")


class TracebackLoggedOnce(harness.unittest.TestCase):
    def test_unexpected_exception_traceback_is_logged_once(self):
        script = pyharness.Script(
            "import arrpc\n"
            "def handler(m):\n"
            "    raise KeyError('missing')\n"
            "s = arrpc.Server('127.0.0.1', 0, handler)\n"
            "s.start(background=True)\n"
            "c = arrpc.Client('127.0.0.1', s.port)\n"
            "try:\n"
            "    c.send('x')\n"
            "except arrpc.error.RpcException as e:\n"
            "    print('client got:', e, flush=True)\n"
            "s.stop()\n")
        try:
            self.assertEqual(script.wait(), 0, script.output())
            out = script.output()
        finally:
            script.stop()
        self.assertIn("client got: KeyError: 'missing'", out)
        self.assertEqual(out.count("Traceback (most recent call last)"), 1, out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Connect(harness.unittest.TestCase):
    def test_no_server_is_connect_exception(self):
        cli = arrpc.Client("127.0.0.1", free_port(), con_max_retries=2, retry_backoff=0.05)
        with self.assertRaises(ConnectException):
            cli.send({"foo": "bar"})

    def test_auth_mismatch_is_auth_exception(self):
        with pyharness.serve(handler, auth_secret="right") as server:
            for secret in ("wrong", None):
                with self.subTest(secret=secret), self.assertRaises(AuthException):
                    pyharness.client(server, auth_secret=secret).send({"foo": "bar"})
            self.assertEqual(pyharness.client(server, auth_secret="right").send("ok"), "ok")

    def test_idle_connection_closed_by_the_server_is_replaced(self):
        # 0.5.0 returned None here for every send after the server closed the connection
        with pyharness.serve(handler, idle_timeout=0.2) as server:
            cli = pyharness.client(server)
            for i in range(5):
                self.assertEqual(cli.send({"n": i}), {"n": i})
                time.sleep(0.5)

    def test_close_with_a_request_in_flight_raises(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def read_then_close():
            conn, _ = listener.accept()
            conn.recv(100)
            conn.close()

        thread = threading.Thread(target=read_then_close)
        thread.start()
        try:
            cli = arrpc.Client("127.0.0.1", listener.getsockname()[1], con_max_retries=1)
            with self.assertRaises(ConnectException):
                cli.send({"foo": "bar"})
        finally:
            thread.join(harness.IO_TIMEOUT)
            listener.close()


class ReplySpin(harness.unittest.TestCase):
    """spin_us: how long a send reads for its reply before it sleeps (arrpc_client_set_spin)."""

    def test_replies_are_right_spinning_or_not(self):
        with pyharness.serve(handler) as server:
            for spin in (None, 0, 1, 10000):
                with self.subTest(spin_us=spin):
                    cli = pyharness.client(server, spin_us=spin)
                    for i in range(20):  # slower than a short spin, then fast: both ways
                        request = {"sleep": 0.002, "n": i} if i % 2 else {"n": i}
                        self.assertEqual(cli.send(request), request)
                    self.assertEqual(cli.send_batch([1, "rpc", 3])[0::2], [1, 3])
                    cli.close()

    def test_bounds(self):
        for spin in (-1, 10001):
            with self.subTest(spin_us=spin), self.assertRaises(ValueError):
                arrpc.Client("127.0.0.1", 1, spin_us=spin)


if __name__ == "__main__":
    pyharness.main()
