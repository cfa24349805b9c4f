"""test_invalid_input.py -- hostile and broken byte streams: each gets exactly one RpcException
reply and then the server closes that connection, while other connections keep being served
and the server's memory stays bounded."""
import unittest

import msgpack

import harness
from harness import RPC_PREFIX, Server

RSS_BOUND_KIB = 64 * 1024  # growth allowed over the idle server's resident memory
TRANSPORTS = ("tcp", "tls")  # ctest runs this file over both (harness.py)


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


# name -> bytes that no server may answer other than with an error and a close.
BAD_INPUTS = {
    "never_used_byte_c1": b"\xc1",
    "c1_after_good_request": packb({"echo": 1}) + b"\xc1",
    "array32_of_4g_elements": b"\xdd\xff\xff\xff\xff",
    "map32_of_4g_entries": b"\xdf\xff\xff\xff\xff",
    "str32_of_4_gib": b"\xdb\xff\xff\xff\xff" + b"x" * 100,
    "bin32_of_4_gib": b"\xc6\xff\xff\xff\xff" + b"x" * 100,
    "ext32_of_4_gib": b"\xc9\xff\xff\xff\xff\x01",
    "array32_declaring_more_elements_than_bytes_allowed": b"\xdd\x01\x00\x00\x01",
    "nesting_100000_deep": b"\x91" * 100000,
    "map_nesting_100000_deep": b"\x81\xa1k" * 100000,
}


class InvalidInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()
        cls.bystander = cls.server.connect()
        cls.bystander.call("warm up")
        cls.rss_before = cls.server.rss_kib()

    @classmethod
    def tearDownClass(cls):
        cls.bystander.close()
        cls.server.stop()

    def assert_bystander_served(self, tag):
        self.assertEqual(self.bystander.call({"echo": tag}), tag)

    def assert_one_error_then_closed(self, conn, expect_first=()):
        replies, closed = conn.replies_until_close(timeout=10)
        self.assertEqual(replies[:len(expect_first)], list(expect_first))
        replies = replies[len(expect_first):]
        self.assertEqual(len(replies), 1, replies)
        self.assertIsInstance(replies[0], str)
        self.assertTrue(replies[0].startswith(RPC_PREFIX), replies[0])
        self.assertTrue(closed, "the server kept the connection open after the error")
        return replies[0]

    def check_bad_input(self, name):
        data = BAD_INPUTS[name]
        with self.server.connect() as c:
            self.assert_bystander_served("before " + name)
            c.send_raw(data)
            self.assert_bystander_served("during " + name)
            expect = [1] if name == "c1_after_good_request" else []
            self.assert_one_error_then_closed(c, expect)
        self.assert_bystander_served("after " + name)

    def test_every_bad_input_answered_once_then_closed(self):
        for name in BAD_INPUTS:
            with self.subTest(input=name):
                self.check_bad_input(name)

    def test_error_reply_names_the_problem(self):
        with self.server.connect() as c:
            c.send_raw(b"\xdb\xff\xff\xff\xff")
            message = self.assert_one_error_then_closed(c)
        self.assertGreater(len(message), len(RPC_PREFIX))

    def test_pipelined_requests_before_bad_byte_answered_first(self):
        with self.server.connect() as c:
            c.send_raw(b"".join(packb({"echo": i}) for i in range(5)) + b"\xc1" + packb(99))
            self.assert_one_error_then_closed(c, [0, 1, 2, 3, 4])

    def test_partial_declared_sizes_do_not_reserve_memory(self):
        """Twenty connections each declare a 16 MiB-minus-a-bit bin and send one byte of it."""
        header = b"\xc6" + (16 * 1024 * 1024 - 100).to_bytes(4, "big") + b"x"
        conns = [self.server.connect() for _ in range(20)]
        try:
            for c in conns:
                c.send_raw(header)
            self.assert_bystander_served("partial headers")
            self.assertLess(self.server.rss_kib(), self.rss_before + RSS_BOUND_KIB)
        finally:
            for c in conns:
                c.close()
        self.assert_bystander_served("after partial headers")

    def test_rss_stays_bounded_after_bad_inputs(self):
        for _ in range(3):
            for name in BAD_INPUTS:
                with self.server.connect() as c:
                    c.send_raw(BAD_INPUTS[name])
                    c.replies_until_close(timeout=10)
        self.assert_bystander_served("after rounds")
        self.assertLess(self.server.rss_kib(), self.rss_before + RSS_BOUND_KIB)

    def test_client_closing_right_after_bad_input_does_not_hurt(self):
        for _ in range(20):
            c = self.server.connect()
            c.send_raw(b"\xc1" + b"\x00" * 1000)
            c.close()
        self.assert_bystander_served("after abrupt closes")


class MaxMessageTest(unittest.TestCase):
    LIMIT = 1024

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--max-message", str(cls.LIMIT)).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def request_of_size(self, size):
        overhead = len(packb({"echo": b"\x00" * 300})) - 300
        request = packb({"echo": b"\x01" * (size - overhead)})
        self.assertEqual(len(request), size)
        return request

    def test_message_of_exactly_the_limit_answered(self):
        with self.server.connect() as c:
            c.send_raw(self.request_of_size(self.LIMIT))
            reply = c.recv()
            self.assertEqual(reply, b"\x01" * len(reply))
            self.assertEqual(len(packb({"echo": reply})), self.LIMIT)
            self.assertEqual(c.call("open"), "open")

    def test_message_one_byte_over_the_limit_refused_and_closed(self):
        with Server("--max-message", str(self.LIMIT)) as server:
            bystander = server.connect()
            self.addCleanup(bystander.close)
            self.assertEqual(bystander.call("hello"), "hello")
            with server.connect() as c:
                c.send_raw(self.request_of_size(self.LIMIT + 1))
                replies, closed = c.replies_until_close(timeout=10)
            self.assertEqual(len(replies), 1, replies)
            self.assertTrue(replies[0].startswith(RPC_PREFIX), replies[0])
            self.assertTrue(closed)
            self.assertEqual(bystander.call("still here"), "still here")

    def test_many_small_values_over_the_limit_refused(self):
        """The size limit counts the whole message, not just one declared length."""
        with self.server.connect() as c:
            c.send_raw(packb(list(range(2000))))
            replies, closed = c.replies_until_close(timeout=10)
        self.assertEqual(len(replies), 1, replies)
        self.assertTrue(replies[0].startswith(RPC_PREFIX), replies[0])
        self.assertTrue(closed)


class MaxDepthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server("--max-depth", "3").start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_nesting_at_the_limit_answered(self):
        with self.server.connect() as c:
            self.assertEqual(c.call([[[1]]]), [[[1]]])
            self.assertEqual(c.call({"a": {"b": [2]}}), {"a": {"b": [2]}})

    def test_nesting_over_the_limit_refused_and_closed(self):
        for obj in ([[[[1]]]], {"a": {"b": {"c": [1]}}}, [[], [[[0]]]]):
            with self.subTest(obj=obj), self.server.connect() as c:
                c.send(obj)
                replies, closed = c.replies_until_close(timeout=10)
                self.assertEqual(len(replies), 1, replies)
                self.assertTrue(replies[0].startswith(RPC_PREFIX), replies[0])
                self.assertTrue(closed)


if __name__ == "__main__":
    harness.main()
