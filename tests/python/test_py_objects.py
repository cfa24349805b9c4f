"""Objects of every MessagePack type both ways, as arrpc 0.5.0 saw them: a request reaches the
handler as msgpack.unpackb(raw=False) gives it, a reply leaves as msgpack.packb(use_bin_type=True)
packs it (byte for byte), and what 0.5.0 refused (integer map keys, falsy requests) works."""
import threading

import msgpack

import pyharness
from pyharness import arrpc, harness

SAMPLES = [
    None, True, False, 0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2**32, 2**63 - 1,
    2**64 - 1, -2**31, -2**63, 0.0, 1.5, -2.25, 1e300, "", "a", "héllo ☃", "x" * 31, "x" * 32,
    "y" * 300, "z" * 70000, b"", b"\x00\xff", b"b" * 300, b"c" * 70000, [], [1, [2, [3]]],
    (1, "two", b"three"), {}, {"foo": "bar"}, {1: "int key", -5: None, 2.5: "float key"},
    {"nested": {"list": [1, {"x": b"y"}]}}, list(range(20)),
    {str(i): i for i in range(20)}, msgpack.ExtType(5, b"ext"), msgpack.ExtType(127, b""),
    msgpack.ExtType(1, b"12345678"), msgpack.Timestamp(0, 0), msgpack.Timestamp(2**32, 5),
    msgpack.Timestamp(-1, 999), bytearray(b"ba"),
]


def as_050(obj):
    """What arrpc 0.5.0's server handed its handler for a request obj."""
    return msgpack.unpackb(msgpack.packb(obj, use_bin_type=True), raw=False,
                           strict_map_key=False)


def same(a, b):
    """Equal, and of the same types all the way down (1 == 1.0 == True does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


class Objects(harness.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.seen = []
        cls.lock = threading.Lock()

        def record(message):
            with cls.lock:
                cls.seen.append(message)
            return message

        cls.server = pyharness.serve(record)
        cls.client = pyharness.client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def last_seen(self):
        with self.lock:
            return self.seen[-1]

    def test_requests_reach_the_handler_as_unpackb_gives_them(self):
        for obj in SAMPLES:
            with self.subTest(obj=repr(obj)[:60]):
                reply = self.client.send(obj)
                self.assertTrue(same(self.last_seen(), as_050(obj)), repr(self.last_seen())[:200])
                self.assertTrue(same(reply, as_050(obj)), repr(reply)[:200])

    def test_replies_are_packed_as_packb_packs_them(self):
        with self.server_conn() as conn:
            for obj in SAMPLES:
                with self.subTest(obj=repr(obj)[:60]):
                    conn.send(obj)
                    _, raw = conn.recv_raw()
                    self.assertEqual(raw, msgpack.packb(as_050(obj), use_bin_type=True))

    def server_conn(self):
        return harness.Conn(self.server.port, strict_map_key=False)

    def test_falsy_requests_are_answered(self):
        with self.server_conn() as conn:
            for obj in (None, 0, "", {}, [], False, b""):
                with self.subTest(obj=obj):
                    self.assertTrue(same(conn.call(obj), as_050(obj)))

    def test_batch_keeps_order_and_types(self):
        replies = self.client.send_batch(SAMPLES)
        self.assertEqual(len(replies), len(SAMPLES))
        for obj, reply in zip(SAMPLES, replies):
            self.assertTrue(same(reply, as_050(obj)), repr(reply)[:200])
        self.assertEqual(self.client.send_batch([]), [])


class ArrayKeys(harness.unittest.TestCase):
    """A map key that is an array arrives as a tuple (msgpack.unpackb fails on it: a list is not
    hashable), and a tuple key goes back as an array."""

    def test_array_keys_are_tuples(self):
        seen = []
        with pyharness.serve(lambda m: seen.append(m) or m) as server, \
                pyharness.client(server) as cli:
            self.assertEqual(cli.send({(1, 2): "a", ((3,), 4): "b"}),
                             {(1, 2): "a", ((3,), 4): "b"})
            self.assertEqual(seen, [{(1, 2): "a", ((3,), 4): "b"}])


class Unpackable(harness.unittest.TestCase):
    """What msgpack.packb refuses, the client refuses before sending, with packb's error types."""

    def test_client_refuses_what_packb_refuses(self):
        with pyharness.serve(lambda m: m) as server, pyharness.client(server) as cli:
            for obj, error in (({1, 2}, TypeError), (object(), TypeError), (2**64, OverflowError),
                               (-2**63 - 1, OverflowError), ([{"a": {1}}], TypeError)):
                with self.subTest(obj=repr(obj)):
                    self.assertRaises(error, cli.send, obj)
            deep = []
            for _ in range(600):
                deep = [deep]
            self.assertRaises(ValueError, cli.send, deep)
            self.assertEqual(cli.send("still fine"), "still fine")


if __name__ == "__main__":
    pyharness.main()
