"""test_client.py -- the C client (through client_driver) against arrpcd and against a server that
answers as arrpc 0.5.0's does (py050_server.py): every MessagePack type, large and pipelined
batches, auth, RpcException, timeouts, connect retries, reconnects."""
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import msgpack  # noqa: E402

import harness  # noqa: E402
from harness import BIN_DIR, AUTH_ERROR, Server, main  # noqa: E402

TRANSPORTS = ("tcp", "tls")  # ctest runs this file over both (harness.py)

DRIVER = os.path.join(BIN_DIR, "client_driver")
PY050 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "py050_server.py")
REPLY_TIMEOUT = 30.0  # seconds the driver may take for one command
AUTH_MESSAGE = AUTH_ERROR.split(": ", 1)[1]


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpackb(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """client_driver as a child: one command line in, one answer line out."""

    def __init__(self, port, *args, secret=None):
        cmd = [DRIVER, "--port", str(port)] + harness.client_args() + [str(a) for a in args]
        if secret is not None:
            cmd += ["--secret-hex", secret.encode().hex()]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pending = b""  # read from stdout, not yet returned as lines

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def line(self):
        """The next answer line; reads the pipe unbuffered so select() tells the truth."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("client_driver did not answer")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError("client_driver exited with %s" % self.proc.wait())
            self.pending += chunk
        text, self.pending = self.pending.split(b"\n", 1)
        return text.decode()

    def command(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        return self.line()

    def send_raw(self, data):
        """(reply bytes, decoded-and-repacked bytes), or raises ClientError."""
        answer = self.command("send " + data.hex())
        if answer.startswith("err "):
            raise ClientError(answer)
        _, raw, repacked = answer.split(" ")
        return bytes.fromhex(raw), bytes.fromhex(repacked)

    def call(self, obj):
        raw, repacked = self.send_raw(packb(obj))
        value = unpackb(raw)
        assert unpackb(repacked) == value, "the decoded reply differs from its bytes"
        return value

    def batch(self, objs):
        answer = self.command("batch " + " ".join(packb(o).hex() for o in objs))
        if answer.startswith("err "):
            raise ClientError(answer)
        count = int(answer.split()[1])
        replies = []
        for _ in range(count):
            status, raw = self.line().split(" ")
            replies.append((status, unpackb(bytes.fromhex(raw))))
        return replies


class ClientError(Exception):
    def __init__(self, answer):
        _, self.name, self.text = (answer.split(" ", 2) + [""])[:3]
        super().__init__("%s: %s" % (self.name, self.text))


PY050_START_S = 30  # a loaded machine (the ASan pass beside other tests) once took over 10


class Py050:
    """py050_server.py as a child, stopped by PID."""

    def __init__(self, port=0, secret=None):
        cmd = ["/usr/bin/python3", PY050, "--port", str(port)]
        if secret is not None:
            cmd += ["--auth-secret", secret]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + PY050_START_S
        text = b""
        while time.monotonic() < deadline:
            self.log.seek(0)
            text = self.log.read()
            m = re.search(rb"listening on [^ ]*:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        status = self.proc.poll()
        self.stop()
        raise RuntimeError("py050_server did not start in %d s (exit status %s):\n%s" % (
            PY050_START_S, status, text.decode(errors="replace")))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def every_type():
    """Values covering each MessagePack format family, packed as Python's msgpack does."""
    return [
        None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**64 - 1,
        -1, -32, -33, -128, -129, -32768, -2**31 - 1, -2**63,
        1.5, -0.0, 1e300, "", "a" * 31, "b" * 32, "c" * 255, "d" * 256, "é☃😀" * 1000,
        "x" * 70000, b"", b"\x00\xff" * 10, b"z" * 300, b"w" * 70000,
        [], [1, [2, [3, [4]]]], list(range(20)), {}, {"a": 1, "b": [True, None]},
        {i: str(i) for i in range(20)}, {1: "int key", b"k": "bin key", 2.5: "float key"},
        msgpack.ExtType(1, b"a"), msgpack.ExtType(2, b"ab"), msgpack.ExtType(3, b"abcd"),
        msgpack.ExtType(4, b"a" * 8), msgpack.ExtType(5, b"a" * 16), msgpack.ExtType(6, b"abc"),
        msgpack.ExtType(7, b"e" * 300), msgpack.ExtType(127, b"f" * 70000),
        msgpack.Timestamp(1, 5), nested(15),
    ]


def nested(depth):
    value = "deep"
    for _ in range(depth):
        value = {"n": [value]}
    return value


class ClientAgainstArrpcd(unittest.TestCase):
    def setUp(self):
        self.server = Server().start()

    def tearDown(self):
        self.server.stop()

    def driver(self, *args, **kw):
        return Driver(self.server.port, *args, **kw)

    def test_every_msgpack_type_round_trips(self):
        with self.driver() as d:
            for value in every_type():
                self.assertEqual(d.call({"echo": value}), value)

    def test_nesting_limit(self):
        with self.driver() as d:
            value = "leaf"
            for _ in range(127):  # the request's map makes 128, the default --max-depth
                value = [value]
            self.assertEqual(d.call({"echo": value}), value)
            with self.assertRaises(ClientError) as cm:
                d.call({"echo": [value]})
            self.assertEqual(cm.exception.name, "EINVAL")  # refused before it is sent
            self.assertEqual(d.call({"echo": 1}), 1)

    def test_float32_and_raw_bytes_reach_the_client(self):
        with self.driver() as d:
            f32 = b"\x81\xa4echo\xca" + struct.pack(">f", 1.5)
            raw, repacked = d.send_raw(f32)
            self.assertEqual(raw, b"\xca" + struct.pack(">f", 1.5))
            self.assertEqual(unpackb(repacked), 1.5)

    def test_falsy_requests_are_answered(self):
        with self.driver("--timeout", 5000) as d:
            for value in ({}, 0, "", [], None, False):
                self.assertEqual(d.call(value), value)

    def test_large_replies(self):
        with self.driver() as d:
            for size in (4095, 4096, 4097, 1 << 20, 5 << 20):
                self.assertEqual(d.call({"echo": b"q" * size}), b"q" * size)
            self.assertEqual(d.call({"echo": "s" * (3 << 20)}), "s" * (3 << 20))

    def test_pipelined_batch_in_order(self):
        with self.driver() as d:
            replies = d.batch([{"echo": i} for i in range(2000)])
            self.assertEqual(replies, [("OK", i) for i in range(2000)])

    def test_large_pipelined_batch(self):
        with self.driver() as d:
            objs = [{"echo": bytes([i]) * (1 << 20)} for i in range(24)]
            replies = d.batch(objs)
            self.assertEqual([r[1] for r in replies], [o["echo"] for o in objs])

    def test_batch_carries_error_replies_in_place(self):
        with self.driver() as d:
            replies = d.batch([{"echo": 1}, {"fail": "second"}, {"echo": 3}])
            self.assertEqual(replies, [("OK", 1),
                                       ("ERPC", "arrpc.error.RpcException: second"),
                                       ("OK", 3)])

    def test_rpc_exception_message_reaches_the_client(self):
        with self.driver() as d:
            with self.assertRaises(ClientError) as cm:
                d.call({"fail": "Something went wrong ☃"})
            self.assertEqual(cm.exception.name, "ERPC")
            self.assertEqual(cm.exception.text, "Something went wrong ☃")
            self.assertEqual(d.call({"echo": "after"}), "after")

    def test_invalid_request_is_refused_before_sending(self):
        with self.driver() as d:
            for bad in (b"\xc1", b"\x92\x01", b"\x01\x02"):
                with self.assertRaises(ClientError) as cm:
                    d.send_raw(bad)
                self.assertEqual(cm.exception.name, "EINVAL")
            self.assertEqual(d.call({"echo": 1}), 1)

    def test_timeout_then_fresh_send_gets_its_own_reply(self):
        with self.driver("--timeout", 300) as d:
            with self.assertRaises(ClientError) as cm:
                d.call({"sleep": 1.5})
            self.assertEqual(cm.exception.name, "ETIMEOUT")
            d.command("timeout 0")
            self.assertEqual(d.call({"echo": "fresh"}), "fresh")
            self.assertEqual(d.call({"echo": "next"}), "next")

    def test_reconnect_after_server_side_close(self):
        port = self.server.port
        with self.driver() as d:
            self.assertEqual(d.call({"echo": 1}), 1)
            self.server.stop()  # closes the idle connection
            self.server = Server("--listen", "127.0.0.1:%d" % port).start()
            self.assertEqual(d.call({"echo": 2}), 2)

    def test_explicit_close_reconnects(self):
        with self.driver() as d:
            self.assertEqual(d.call({"echo": 1}), 1)
            self.assertEqual(d.command("close"), "ok")
            self.assertEqual(d.call({"echo": 2}), 2)


class ClientAuthAgainstArrpcd(unittest.TestCase):
    def test_good_secret(self):
        with Server(secret="s3cret") as srv, Driver(srv.port, secret="s3cret") as d:
            self.assertEqual(d.call({"echo": {"signed": True}}), {"signed": True})
            self.assertEqual(d.batch([{"echo": 1}, {"echo": 2}]), [("OK", 1), ("OK", 2)])

    def test_bad_and_missing_secret(self):
        with Server(secret="s3cret") as srv:
            for secret in ("wrong", None):
                with Driver(srv.port, secret=secret) as d:
                    with self.assertRaises(ClientError) as cm:
                        d.call({"echo": 1})
                    self.assertEqual(cm.exception.name, "EAUTH")
                    self.assertEqual(cm.exception.text, AUTH_MESSAGE)
                    self.assertEqual(d.batch([{"echo": 1}])[0][0], "EAUTH")


class ClientConnect(unittest.TestCase):
    def test_refused_after_the_retries_with_backoff(self):
        port = free_port()
        with Driver(port, "--retries", 3, "--backoff", 200) as d:
            start = time.monotonic()
            with self.assertRaises(ClientError) as cm:
                d.call({"echo": 1})
            elapsed = time.monotonic() - start
        self.assertEqual(cm.exception.name, "ECONNECT")
        self.assertIn("3 attempts", cm.exception.text)
        self.assertGreaterEqual(elapsed, 0.5)  # sleeps of 200 ms and 400 ms

    def test_port_that_opens_late(self):
        port = free_port()
        with Driver(port, "--retries", 6, "--backoff", 200) as d:
            d.proc.stdin.write(b"send " + packb({"echo": "late"}).hex().encode() + b"\n")
            d.proc.stdin.flush()
            time.sleep(0.3)
            with Server("--listen", "127.0.0.1:%d" % port):
                answer = d.line()
        self.assertTrue(answer.startswith("ok "), answer)
        self.assertEqual(unpackb(bytes.fromhex(answer.split(" ")[1])), "late")

    def test_connect_timeout_to_a_silent_address(self):
        # A listening socket with a full backlog does not complete handshakes, so only the
        # connect timeout ends each try.
        with socket.socket() as lsock:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(0)
            port = lsock.getsockname()[1]
            fillers = []
            try:
                for _ in range(8):
                    s = socket.socket()
                    s.setblocking(False)
                    s.connect_ex(("127.0.0.1", port))
                    fillers.append(s)
                with Driver(port, "--retries", 2, "--backoff", 0, "--connect-timeout", 200) as d:
                    answer = d.command("send " + packb(1).hex())
            finally:
                for s in fillers:
                    s.close()
        self.assertTrue(answer.startswith("err ECONNECT"), answer)
        self.assertIn("2 attempts", answer)


@unittest.skipIf(harness.TRANSPORT == "tls", "the 0.5.0 stand-in serves plain TCP only")
class ClientAgainstPy050(unittest.TestCase):
    """The same client against a server that behaves as arrpc 0.5.0's."""

    def test_values_and_errors(self):
        with Py050() as srv, Driver(srv.port) as d:
            for value in [1, "é", b"bin", [1, {"a": None}], {"x": 1.5}, "y" * 100000]:
                self.assertEqual(d.call({"echo": value}), value)
            with self.assertRaises(ClientError) as cm:
                d.call({"fail": "Something went wrong"})
            self.assertEqual((cm.exception.name, cm.exception.text),
                             ("ERPC", "Something went wrong"))
            self.assertEqual(d.batch([{"echo": i} for i in range(200)]),
                             [("OK", i) for i in range(200)])

    def test_auth(self):
        with Py050(secret="s3cret") as srv:
            with Driver(srv.port, secret="s3cret") as d:
                self.assertEqual(d.call({"echo": "signed"}), "signed")
            for secret in ("wrong", None):
                with Driver(srv.port, secret=secret) as d:
                    with self.assertRaises(ClientError) as cm:
                        d.call({"echo": 1})
                    self.assertEqual((cm.exception.name, cm.exception.text),
                                     ("EAUTH", AUTH_MESSAGE))

    def test_unanswered_falsy_request_times_out_and_the_next_send_is_clean(self):
        with Py050() as srv, Driver(srv.port, "--timeout", 300) as d:
            with self.assertRaises(ClientError) as cm:
                d.call({})  # 0.5.0 never answers a falsy request
            self.assertEqual(cm.exception.name, "ETIMEOUT")
            self.assertEqual(d.call({"echo": "next"}), "next")

    def test_connection_dropped_in_flight_is_an_error(self):
        with Py050() as srv, Driver(srv.port) as d:
            with self.assertRaises(ClientError) as cm:
                d.call({"die": True})
            self.assertEqual(cm.exception.name, "ECLOSED")
            self.assertEqual(d.call({"echo": "again"}), "again")

    def test_server_closing_an_idle_connection_is_reconnected(self):
        with Py050() as srv, Driver(srv.port) as d:
            self.assertEqual(d.call({"bye": "first"}), "first")  # the server closes after it
            time.sleep(0.1)  # not needed for correctness: lets the FIN arrive first
            self.assertEqual(d.call({"echo": "second"}), "second")

    def test_reply_above_the_client_limit_is_refused(self):
        with Py050() as srv, Driver(srv.port, "--max-message", 1000) as d:
            with self.assertRaises(ClientError) as cm:
                d.call({"repeat": ["x", 2000]})
            self.assertEqual(cm.exception.name, "ETOOBIG")
            self.assertEqual(d.call({"echo": "small"}), "small")  # on a fresh connection

    def test_late_port_and_restart(self):
        port = free_port()
        with Driver(port, "--retries", 5, "--backoff", 200) as d:
            with Py050(port=port):
                self.assertEqual(d.call({"echo": 1}), 1)
            with Py050(port=port):
                self.assertEqual(d.call({"echo": 2}), 2)


if __name__ == "__main__":
    main()
