"""test_arrpc_call.py -- arrpc-call against arrpcd: each exit code, JSON round trips of nested
values and unicode, uint64 and shortest reals, the bin convention, and --lines order."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN_DIR, Server, main  # noqa: E402

ARRPC_CALL = os.path.join(BIN_DIR, "arrpc-call")
RUN_TIMEOUT = 60  # seconds for one arrpc-call run


def call(port, *args, stdin=None):
    cmd = [ARRPC_CALL, "--port", str(port)] + [str(a) for a in args]
    p = subprocess.run(cmd, input=stdin.encode() if stdin is not None else None,
                       capture_output=True, timeout=RUN_TIMEOUT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class GarbageServer:
    """Answers every connection with bytes that are not MessagePack, then closes it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            try:
                conn.recv(65536)
                conn.sendall(b"\xc1\xc1\xc1")
            except OSError:
                pass

    def close(self):
        self.sock.close()
        self.thread.join(timeout=30)


class ArrpcCall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server().start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def ok(self, *args, stdin=None):
        rc, out, err = call(self.server.port, *args, stdin=stdin)
        self.assertEqual(rc, 0, err)
        return out

    def test_nested_and_unicode_round_trip(self):
        value = {"a": [1, -2, 3.25, None, True, False, "", {"b": {"c": []}}],
                 "ünï": "héllo ☃ 😀 \u0000 end", "big": 9223372036854775807, "o": {}}
        out = self.ok(json.dumps({"echo": value}, ensure_ascii=False))
        self.assertEqual(json.loads(out), value)
        self.assertEqual(out.count("\n"), 1)

    def test_shortest_reals(self):
        for text, want in (("0.1", "0.1"), ("1e300", "1e+300"), ("5e-324", "5e-324"),
                           ("1.0", "1.0"), ("-0.0", "-0.0"), ("[0.1, {\"x\": 2.5}]",
                                                              '[0.1,{"x":2.5}]')):
            self.assertEqual(self.ok('{"echo": %s}' % text), want + "\n", text)

    def test_uint64_both_ways(self):
        for text, want in (("18446744073709551615", "18446744073709551615"),
                           ("9223372036854775808", "9223372036854775808"),
                           ("-9223372036854775808", "-9223372036854775808"),
                           ('[18446744073709551615, {"k": 18446744073709551615}]',
                            '[18446744073709551615,{"k":18446744073709551615}]'),
                           ('"18446744073709551616"', '"18446744073709551616"')):
            self.assertEqual(self.ok('{"echo": %s}' % text), want + "\n", text)
        for number in ("18446744073709551616", "-9223372036854775809"):
            rc, out, err = call(self.server.port, '{"echo": [1, %s]}' % number)
            self.assertEqual((rc, out), (2, ""), err)
            self.assertIn(number, err)

    def test_request_from_stdin(self):
        out = self.ok(stdin='{"echo": ["from", "stdin"]}\n')
        self.assertEqual(json.loads(out), ["from", "stdin"])

    def test_bin_ext_and_map_conventions(self):
        for value in ({"$bin": "AAEC/w=="}, {"$ext": [5, "aGk="]},
                      {"$map": [[1, "one"], [{"$bin": ""}, None]]}):
            out = self.ok(json.dumps({"echo": value}))
            self.assertEqual(json.loads(out), value)

    def test_lines_keep_their_order(self):
        lines = [json.dumps({"echo": {"i": i, "s": "é" * (i % 7)}}) for i in range(500)]
        out = self.ok("--lines", stdin="\n".join(lines[:250]) + "\n\n" + "\n".join(lines[250:]))
        replies = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(replies, [{"i": i, "s": "é" * (i % 7)} for i in range(500)])

    def test_lines_with_an_error_reply(self):
        rc, out, err = call(self.server.port, "--lines",
                            stdin='{"echo": 1}\n{"fail": "nope"}\n{"echo": 3}\n')
        self.assertEqual(rc, 6)
        self.assertEqual([json.loads(x) for x in out.splitlines()],
                         [1, "arrpc.error.RpcException: nope", 3])
        self.assertIn("nope", err)

    def test_help(self):
        out = self.ok("--help")
        self.assertIn("--lines", out)
        self.assertIn("$bin", out)

    def test_exit_2_usage(self):
        for args in (["--no-such-option"], ["--port", "x"], ["--timeout", "-1"], ["{bad json"],
                     ["{\"$bin\": 5}"], ["1", "2"]):
            rc, _, err = call(self.server.port, *args)
            self.assertEqual(rc, 2, (args, err))

    def test_exit_3_connect(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        rc, _, err = call(port, "--retries", 2, "--retry-backoff", 0.05, "1")
        self.assertEqual(rc, 3, err)

    def test_exit_4_auth(self):
        with Server(secret="s3cret") as srv, tempfile.NamedTemporaryFile("w") as good, \
                tempfile.NamedTemporaryFile("w") as bad:
            good.write("s3cret\n")
            good.flush()
            bad.write("wrong")
            bad.flush()
            rc, out, err = call(srv.port, "--auth-secret-file", good.name, '{"echo": "ok"}')
            self.assertEqual((rc, json.loads(out)), (0, "ok"), err)
            rc, _, err = call(srv.port, "--auth-secret-file", bad.name, '{"echo": "ok"}')
            self.assertEqual(rc, 4, err)
            self.assertIn("auth_secret", err)
            rc, _, err = call(srv.port, '{"echo": "ok"}')
            self.assertEqual(rc, 4, err)

    def test_exit_5_timeout(self):
        rc, out, err = call(self.server.port, "--timeout", 0.2, '{"sleep": 1}')
        self.assertEqual(rc, 5, err)
        self.assertEqual(out, "")

    def test_exit_6_rpc_error(self):
        rc, out, err = call(self.server.port, '{"fail": "Something went wrong ☃"}')
        self.assertEqual(rc, 6)
        self.assertEqual(out, "")
        self.assertIn("Something went wrong ☃", err)

    def test_exit_7_protocol(self):
        garbage = GarbageServer()
        try:
            rc, _, err = call(garbage.port, "--timeout", 10, "1")
        finally:
            garbage.close()
        self.assertEqual(rc, 7, err)


if __name__ == "__main__":
    main()
