"""test_auth.py -- signed requests (arrpc 0.5.0's HMAC-SHA256 envelope) against arrpcd started
with --auth-secret-file: good signatures answered, every malformed envelope refused with the
0.5.0 AuthException text, and the connection kept usable afterwards."""
import hashlib
import hmac
import unittest

import msgpack

import harness
from harness import AUTH_ERROR, RPC_PREFIX, Server

SECRET = "s3cr3t-\u00e9ntropy"
TRANSPORTS = ("tcp", "tls")  # ctest runs this file over both (harness.py)


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def mac_hex(data, secret=SECRET):
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(secret=SECRET).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def conn(self, secret=None):
        c = self.server.connect(secret=secret)
        self.addCleanup(c.close)
        return c

    def assert_refused_then_usable(self, envelope, expected=AUTH_ERROR):
        """envelope (already packed) gets exactly expected, and the same connection then
        answers a correctly signed request."""
        c = self.conn()
        c.send_raw(envelope)
        self.assertEqual(c.recv(), expected)
        c.send_raw(harness.sign(SECRET, packb({"echo": "after"})))
        self.assertEqual(c.recv(), "after")

    def test_signed_request_answered(self):
        c = self.conn(secret=SECRET)
        self.assertEqual(c.call({"echo": {"a": [1, 2]}}), {"a": [1, 2]})
        self.assertEqual(c.call("plain"), "plain")

    def test_signed_falsy_request_answered(self):
        c = self.conn(secret=SECRET)
        self.assertEqual(c.call({}), {})
        self.assertIsNone(c.call(None))

    def test_signed_handler_error_propagated(self):
        c = self.conn(secret=SECRET)
        self.assertEqual(c.call({"fail": "nope"}), RPC_PREFIX + "nope")

    def test_unsigned_request_refused_and_connection_usable(self):
        self.assert_refused_then_usable(packb({"echo": "unsigned"}))

    def test_unsigned_scalar_request_refused(self):
        self.assert_refused_then_usable(packb(0))

    def test_wrong_secret_refused(self):
        self.assert_refused_then_usable(harness.sign("not the secret", packb({"echo": 1})))

    def test_signature_of_other_data_refused(self):
        data = packb({"echo": "tampered"})
        envelope = packb({"arrpc.sign": mac_hex(packb({"echo": "original"})), "data": data})
        self.assert_refused_then_usable(envelope)

    def test_missing_signature_key_refused(self):
        self.assert_refused_then_usable(packb({"data": packb({"echo": 1})}))

    def test_missing_data_key_refused(self):
        data = packb({"echo": 1})
        self.assert_refused_then_usable(packb({"arrpc.sign": mac_hex(data)}))

    def test_uppercase_hex_signature_refused(self):
        data = packb({"echo": 1})
        envelope = packb({"arrpc.sign": mac_hex(data).upper(), "data": data})
        self.assert_refused_then_usable(envelope)

    def test_signature_of_wrong_length_refused(self):
        data = packb({"echo": 1})
        sig = mac_hex(data)
        for bad in (sig[:-1], sig + "0", sig[:32], "", sig + sig):
            with self.subTest(length=len(bad)):
                self.assert_refused_then_usable(packb({"arrpc.sign": bad, "data": data}))

    def test_signature_as_bin_refused(self):
        data = packb({"echo": 1})
        envelope = packb({"arrpc.sign": mac_hex(data).encode(), "data": data})
        self.assert_refused_then_usable(envelope)

    def test_data_as_str_refused(self):
        text = '{"echo": 1}'
        envelope = packb({"arrpc.sign": mac_hex(text.encode()), "data": text})
        self.assert_refused_then_usable(envelope)

    def test_extra_key_refused(self):
        data = packb({"echo": 1})
        envelope = packb({"arrpc.sign": mac_hex(data), "data": data, "extra": True})
        self.assert_refused_then_usable(envelope)

    def test_envelope_as_array_refused(self):
        data = packb({"echo": 1})
        self.assert_refused_then_usable(packb([mac_hex(data), data]))

    def test_signed_data_not_msgpack_gets_rpc_exception(self):
        for data in (b"\xc1", b"", b"\x92\x01", packb(1) + packb(2)):
            with self.subTest(data=data):
                envelope = packb({"arrpc.sign": mac_hex(data), "data": data})
                c = self.conn()
                c.send_raw(envelope)
                reply = c.recv()
                self.assertIsInstance(reply, str)
                self.assertTrue(reply.startswith(RPC_PREFIX), reply)
                c.send_raw(harness.sign(SECRET, packb({"echo": "after"})))
                self.assertEqual(c.recv(), "after")

    def test_refusals_pipelined_with_good_requests_keep_order(self):
        c = self.conn()
        good = [harness.sign(SECRET, packb({"echo": i})) for i in range(3)]
        c.send_raw(good[0] + packb("unsigned") + good[1] + harness.sign("bad", packb(9)) + good[2])
        self.assertEqual([c.recv() for _ in range(5)], [0, AUTH_ERROR, 1, AUTH_ERROR, 2])


class AuthSecretFileTest(unittest.TestCase):
    def test_trailing_newline_of_secret_file_ignored(self):
        with Server(secret=SECRET + "\n") as server, server.connect(secret=SECRET) as c:
            self.assertEqual(c.call({"echo": "nl"}), "nl")

    def test_secret_with_newline_does_not_match_without_it(self):
        with Server(secret=SECRET) as server, server.connect(secret=SECRET + "\n") as c:
            self.assertEqual(c.call({"echo": "nl"}), AUTH_ERROR)

    def test_unsigned_server_echoes_envelope_unverified(self):
        """Without a secret the envelope is an ordinary request (as in 0.5.0)."""
        with Server() as server, server.connect() as c:
            envelope = {"arrpc.sign": "0" * 64, "data": b"\x01"}
            self.assertEqual(c.call(envelope), envelope)


class InProcessAuthTest(unittest.TestCase):
    """--workers 0 (no master) must read the secret file too: it once served unsigned calls."""

    def test_secret_file_enforced_without_a_master(self):
        with Server("--workers", "0", secret=SECRET) as server:
            with server.connect() as unsigned:
                self.assertEqual(unsigned.call({"echo": 1}), harness.AUTH_ERROR)
            with server.connect(secret=SECRET) as signed:
                self.assertEqual(signed.call({"echo": 1}), 1)


if __name__ == "__main__":
    harness.main()
