"""test_protocol.py -- the 0.5.0 wire protocol against the real arrpcd: every MessagePack type
echoed byte for byte, large and pipelined messages, odd framing, falsy requests, errors."""
import math
import socket
import struct
import threading
import unittest

import msgpack

import harness
from harness import RPC_PREFIX, Server

MAX_MESSAGE = 16 * 1024 * 1024  # arrpcd's default --max-message
DEFAULT_MAX_DEPTH = 128  # arrpcd's default --max-depth (ARRPC_DEFAULT_MAX_DEPTH)
TRANSPORTS = ("tcp", "tls")  # ctest runs this file over both (harness.py)


def packb(obj, **kw):
    return msgpack.packb(obj, use_bin_type=True, **kw)


def nested(depth, leaf=0):
    """depth lists around leaf."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def deep_bytes(depth):
    """A message `depth` levels deep, arrays and maps in turn ({"k": [{"k": ...}]}), packed by
    hand: Python's packer stops at 511 levels (its unpacker goes to 1024)."""
    return b"".join(b"\x91" if i % 2 else b"\x81\xa1k" for i in range(depth)) + b"\xa4leaf"


class ProtocolTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def conn(self, **options):
        c = self.server.connect(**options)
        self.addCleanup(c.close)
        return c

    def assert_echo_exact(self, obj, **pack_options):
        """The reply decodes to obj and is the very bytes the request was."""
        c = self.conn(strict_map_key=False)
        request = packb(obj, **pack_options)
        c.send_raw(request)
        reply, raw = c.recv_raw()
        self.assertEqual(raw, request)
        return reply

    # -- every type --

    def test_nil_and_bools_echoed(self):
        for obj in (None, True, False, [None, True, False]):
            with self.subTest(obj=obj):
                self.assertIs(type(self.assert_echo_exact(obj)), type(obj))

    def test_ints_at_every_width_boundary_echoed(self):
        values = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
                  2**64 - 1, -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769,
                  -2**31 + 1, -2**31, -2**31 - 1, -2**63 + 1, -2**63]
        for v in values:
            with self.subTest(v=v):
                reply = self.assert_echo_exact(v)
                self.assertEqual(reply, v)
                self.assertIs(type(reply), int)

    def test_float64_values_echoed(self):
        for v in (0.0, -0.0, 1.5, -2.25, 1e308, 5e-324, math.pi, math.inf, -math.inf, math.nan):
            with self.subTest(v=v):
                reply = self.assert_echo_exact(v)
                self.assertEqual(struct.pack(">d", reply), struct.pack(">d", v))

    def test_float32_echoed_as_float32(self):
        request = packb(0.5, use_single_float=True)
        self.assertEqual(request[0], 0xca)
        self.assertEqual(self.assert_echo_exact(0.5, use_single_float=True), 0.5)

    def test_str_of_every_width_echoed(self):
        for s in ("", "a", "x" * 31, "x" * 32, "y" * 255, "y" * 256, "z" * 65535, "z" * 65536,
                  "héllo wörld", "日本語テキスト", "emoji \U0001F600 \u2713", "nul\x00inside"):
            with self.subTest(length=len(s)):
                reply = self.assert_echo_exact(s)
                self.assertIs(type(reply), str)
                self.assertEqual(reply, s)

    def test_bin_of_every_width_echoed(self):
        for n in (0, 1, 255, 256, 65535, 65536, 100000):
            with self.subTest(n=n):
                b = bytes(i % 251 for i in range(n))
                reply = self.assert_echo_exact(b)
                self.assertIs(type(reply), bytes)
                self.assertEqual(reply, b)

    def test_arrays_of_every_width_echoed(self):
        for n in (0, 1, 15, 16, 65535, 65536):
            with self.subTest(n=n):
                a = list(range(n))
                self.assertEqual(self.assert_echo_exact(a), a)

    def test_maps_of_every_width_echoed(self):
        for n in (0, 1, 15, 16, 65535, 65536):
            with self.subTest(n=n):
                m = {"k%d" % i: i for i in range(n)}
                self.assertEqual(self.assert_echo_exact(m), m)

    def test_map_with_non_str_keys_echoed(self):
        m = {1: "one", -2: "minus two", b"bin": None, 1.5: True}
        self.assertEqual(self.assert_echo_exact(m), m)

    def test_nested_structure_echoed(self):
        obj = {"list": [1, [2, [3, [4, {"deep": [None, b"\x00\xff", "s", -7, 2.5]}]]]],
               "map": {"a": {"b": {"c": {"d": []}}}}, "empty": {}, "t": True}
        self.assertEqual(self.assert_echo_exact(obj), obj)

    def test_nesting_40_deep_echoed(self):
        """Deeper than msgpack-c's 32, which arrpc refused before it had its own decoder."""
        self.assertEqual(self.assert_echo_exact(nested(40)), nested(40))
        self.assertEqual(self.assert_echo_exact({"a": nested(39)}), {"a": nested(39)})

    def test_nesting_at_the_default_limit_echoed(self):
        self.assertEqual(self.assert_echo_exact(nested(DEFAULT_MAX_DEPTH)),
                         nested(DEFAULT_MAX_DEPTH))

    def test_empty_container_at_the_depth_limit_counts(self):
        obj = nested(DEFAULT_MAX_DEPTH, leaf=[])  # one level more: the innermost empty list
        c = self.conn()
        c.send(obj)
        reply = c.recv()
        self.assertTrue(reply.startswith(harness.RPC_PREFIX + "nesting deeper"), reply)

    def test_ext_types_echoed(self):
        for code in (0, 1, 42, 127):  # Python's ExtType refuses the reserved negative codes
            for n in (1, 2, 3, 4, 8, 16, 17, 255, 256, 65536):
                with self.subTest(code=code, n=n):
                    ext = msgpack.ExtType(code, (bytes(range(256)) * (n // 256 + 1))[:n])
                    self.assertEqual(self.assert_echo_exact(ext), ext)

    def test_timestamp_ext_echoed(self):
        ts = msgpack.Timestamp(1700000000, 123456789)
        self.assertEqual(self.assert_echo_exact(ts), ts)

    # -- sizes and framing --

    def test_one_mib_message_echoed(self):
        payload = bytes(range(256)) * 4096
        c = self.conn()
        self.assertEqual(c.call({"echo": payload}), payload)

    def test_largest_message_within_default_limit_echoed(self):
        overhead = len(packb({"echo": b"\x00" * 70000})) - 70000
        payload = b"\xab" * (MAX_MESSAGE - overhead)
        request = packb({"echo": payload})
        self.assertEqual(len(request), MAX_MESSAGE)
        c = self.conn()
        c.send_raw(request)
        reply = c.recv()
        self.assertEqual(len(reply), len(payload))
        self.assertEqual(reply, payload)
        self.assertEqual(c.call("after"), "after")

    def test_pipelined_requests_answered_in_order(self):
        c = self.conn()
        c.send_raw(b"".join(packb({"echo": [i, "r%d" % i]}) for i in range(1000)))
        for i in range(1000):
            self.assertEqual(c.recv(), [i, "r%d" % i])

    @unittest.skipIf(harness.TRANSPORT == "tls",
                     "one SSLSocket written and read from two threads is not safe in OpenSSL; "
                     "test_tls.py checks TLS backpressure with the single-threaded C client")
    def test_pipelined_large_replies_survive_backpressure(self):
        """More reply bytes than the output high-water mark, while the client is still sending."""
        c = self.conn()
        payload = b"p" * (1 << 20)
        request = packb({"echo": payload})
        sender = threading.Thread(target=c.send_raw, args=(request * 24,))
        sender.start()
        try:
            for _ in range(24):
                self.assertEqual(c.recv(), payload)
        finally:
            sender.join(timeout=harness.IO_TIMEOUT)
        self.assertFalse(sender.is_alive())

    def test_request_sent_one_byte_at_a_time_answered(self):
        c = self.conn(nodelay=True)
        obj = {"echo": {"text": "byte by byte", "n": list(range(20)), "b": b"\x01\x02"}}
        request = packb(obj)
        for i in range(len(request)):
            c.send_raw(request[i:i + 1])
        self.assertEqual(c.recv(), obj["echo"])
        self.assertEqual(c.call(1), 1)

    def test_falsy_requests_answered(self):
        c = self.conn()
        for obj in ({}, 0, "", None, False, [], b"", 0.0):
            with self.subTest(obj=obj):
                reply = c.call(obj)
                self.assertEqual(reply, obj)
                self.assertIs(type(reply), type(obj))

    def test_many_connections_served_concurrently(self):
        conns = [self.conn() for _ in range(50)]
        requests = [packb({"echo": "conn %d" % i}) for i in range(50)]
        # Every connection holds half a request before any completes one.
        for c, r in zip(conns, requests):
            c.send_raw(r[:len(r) // 2])
        for c, r in zip(reversed(conns), reversed(requests)):
            c.send_raw(r[len(r) // 2:])
        for i, c in enumerate(conns):
            self.assertEqual(c.recv(), "conn %d" % i)
        for i, c in enumerate(conns):
            self.assertEqual(c.call(i), i)

    # -- errors --

    def test_rpc_exception_message_intact(self):
        c = self.conn()
        for msg in ("boom", "", "ünïcødé \u2603 \U0001F4A5 错误", "x" * 4000,
                    "line one\nline two\ttab"):
            with self.subTest(length=len(msg)):
                self.assertEqual(c.call({"fail": msg}), RPC_PREFIX + msg)
        self.assertEqual(c.call({"echo": "still open"}), "still open")

    # Known bug (reported, in workers/dispatch.c arrpc_call_fail): a message longer than
    # ARRPC_FAIL_MESSAGE_MAX is cut at a byte count, which can split a UTF-8 character and send
    # a str that is not UTF-8; clients that unpack with raw=False then fail to decode it.
    def test_truncated_rpc_exception_is_still_utf8(self):
        c = self.conn()
        reply = c.call({"fail": "x" * 4094 + "\u00e9" * 10})
        self.assertTrue(reply.startswith(RPC_PREFIX + "x" * 4094))

    def test_rpc_exception_with_non_str_argument(self):
        c = self.conn()
        self.assertEqual(c.call({"fail": 1}), RPC_PREFIX + "fail wants a string")

    @unittest.skipIf(harness.TRANSPORT == "tls",
                     "Python's SSLSocket.shutdown drops TLS: a TLS half-close cannot be sent")
    def test_half_closed_client_gets_all_replies_then_eof(self):
        c = self.conn()
        c.send_raw(b"".join(packb({"echo": i}) for i in range(10)))
        c.sock.shutdown(socket.SHUT_WR)
        replies, closed = c.replies_until_close(timeout=10)
        self.assertEqual(replies, list(range(10)))
        self.assertTrue(closed)


class DeepNestingTest(unittest.TestCase):
    """--max-depth far above msgpack-c's 32: a 1000-level message comes back whole."""
    DEPTH = 1000

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--max-depth", str(cls.DEPTH)).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_nesting_1000_deep_echoed(self):
        request = deep_bytes(self.DEPTH)
        with self.server.connect() as c:
            c.send_raw(request)
            reply, raw = c.recv_raw()
            self.assertEqual(raw, request)
            for i in range(self.DEPTH):  # walked down, not ==: Python compares recursively
                reply = reply[0] if i % 2 else reply["k"]
            self.assertEqual(reply, "leaf")
            c.send_raw(request)  # the connection serves on
            self.assertEqual(c.recv_raw()[1], request)

    def test_one_level_more_refused(self):
        with self.server.connect() as c:
            c.send_raw(deep_bytes(self.DEPTH + 1))
            reply = c.recv()
            self.assertEqual(reply, RPC_PREFIX + "nesting deeper than the limit of 1000")


if __name__ == "__main__":
    harness.main()
