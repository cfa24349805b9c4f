"""test_hostile.py -- hostile clients against the real arrpcd, each while a bystander connection
keeps calling and must keep getting right answers, with the worker's resident memory bounded:
slowloris (--request-timeout), clients that never read (--write-timeout), many silent
connections (--max-connections, --idle-timeout), a half-closed client under backpressure,
hostile payloads inside signature envelopes, TLS garbage, handler replies over --max-message.
Every limit hit is checked in the metrics' `reason` and in the log, once per connection.

What test_invalid_input.py, test_auth.py and test_tls.py already cover (each bad byte stream,
each envelope refusal, plaintext on a TLS port, handshake deadlines) is not repeated; here the
same kinds of input are checked for what those files do not look at: counters and log lines.
"""
import os
import re
import socket
import ssl
import struct
import threading
import time
import unittest
import urllib.request

import msgpack

import harness
from harness import AUTH_ERROR, RPC_PREFIX, Server

RSS_BOUND_KIB = 64 * 1024  # growth allowed over the warmed-up workers' resident memory
WAIT_S = 10.0              # generous bound for anything the server does "soon"
BYSTANDER_GAP_S = 5.0      # the bystander's slowest call; far above a normal one
MIB = 1024 * 1024

# Byte streams no request can be read from, with the metrics' reason each is counted under
# (test_access_log.py sends them too).
BAD_STREAMS = [
    (b"\xc1", "invalid_message"),
    (b"\xdd\xff\xff\xff\xff", "too_large"),
    (b"\xdf\xff\xff\xff\xff", "too_large"),
    (b"\xdb\xff\xff\xff\xff" + b"x" * 100, "too_large"),
    (b"\xc6\xff\xff\xff\xff" + b"x" * 100, "too_large"),
    (b"\x91" * 100000, "too_deep"),
]
# Validly signed data that is not one readable MessagePack object: refused as invalid_message.
HOSTILE_SIGNED_DATA = [b"\xdd\xff\xff\xff\xff", b"\xc1", b"\x91" * 1000,
                       b"\xdb\xff\xff\xff\xff" + b"x" * 10]


def refused_envelopes(secret):
    """Envelopes around a valid request that the server refuses with the AuthException."""
    data = packb({"echo": 1})
    sig = msgpack.unpackb(harness.sign(secret, data), raw=False)["arrpc.sign"]
    return [packb(e) for e in (
        {"arrpc.sign": sig, "data": data.decode("latin-1")},  # data not bin
        {"arrpc.sign": sig[:-2], "data": data},               # signature too short
        {"arrpc.sign": sig.upper(), "data": data},            # uppercase hex
        {"arrpc.sign": sig, "data": data, "more": 1},         # an extra key
        {"data": data},                                       # missing keys
        {"arrpc.sign": sig},
    )]


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def wait_until(predicate, timeout=WAIT_S, step=0.05):
    """The first truthy value of predicate() within timeout, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


# -- the worker processes -------------------------------------------------------------------------

def worker_pids(server):
    """The master's children: its workers."""
    path = "/proc/%d/task/%d/children" % (server.pid, server.pid)
    try:
        with open(path) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def workers_rss_kib(server):
    """The sum of the workers' resident memory (KiB)."""
    return sum(rss_kib(pid) for pid in worker_pids(server))


# -- metrics ----------------------------------------------------------------------------------------

def metrics_port(server):
    m = wait_until(lambda: re.search(r"metrics on http://[^:]+:(\d+)/", server.log()))
    assert m, "no metrics line in the log:\n" + server.log()
    return int(m.group(1))


def errors(server, reason):
    """arrpc_server_errors_total summed over every label set with this reason."""
    url = "http://127.0.0.1:%d/metrics" % server.metrics_port
    with urllib.request.urlopen(url, timeout=WAIT_S) as res:
        text = res.read().decode()
    pattern = re.compile(r'^arrpc_server_errors_total\{[^}]*reason="%s"[^}]*\} (\S+)$' % reason,
                         re.M)
    return sum(float(v) for v in pattern.findall(text))


def log_lines_about(server, conn_sock, text):
    """Log lines that name this client connection (by its local port) and contain text."""
    peer = "127.0.0.1:%d" % conn_sock.getsockname()[1]
    return [l for l in server.log().splitlines() if peer + ":" in l + ":" and text in l]


# -- the bystander ----------------------------------------------------------------------------------

class Bystander(threading.Thread):
    """Calls {"echo": [tag, i]} on its own connection until stopped, and records every wrong
    answer or error and the slowest call. Use check() at the end of a test."""

    def __init__(self, server, period=0.02):
        super().__init__(daemon=True)
        self.conn = server.connect(secret=server.secret)
        self.period = period
        self.failures = []
        self.calls = 0
        self.slowest = 0.0
        self._halt = threading.Event()

    def run(self):
        i = 0
        while not self._halt.is_set():
            want = ["bystander", i]
            started = time.monotonic()
            try:
                got = self.conn.call({"echo": want})
            except Exception as e:  # noqa: BLE001 -- anything at all is a failure here
                self.failures.append("call %d: %r" % (i, e))
                return
            self.slowest = max(self.slowest, time.monotonic() - started)
            if got != want:
                self.failures.append("call %d: got %r" % (i, got))
            self.calls += 1
            i += 1
            self._halt.wait(self.period)

    def finish(self):
        self._halt.set()
        self.join(timeout=WAIT_S + IO_GRACE)
        self.conn.close()

    def check(self, test):
        """Asserts that it was served throughout: no failure, calls made, none very slow."""
        calls = self.calls
        test.assertEqual(self.failures, [])
        wait_until(lambda: self.calls > calls + 2 or self.failures, timeout=WAIT_S)
        test.assertEqual(self.failures, [])
        test.assertGreater(self.calls, calls, "the bystander stopped getting answers")
        test.assertLess(self.slowest, BYSTANDER_GAP_S)


IO_GRACE = harness.IO_TIMEOUT  # a bystander call in flight when it is stopped


class HostileCase(unittest.TestCase):
    """One worker, so that the attacker and the bystander share it; metrics on."""

    def start(self, *args, **kw):
        server = Server("--workers", "1", "--drain-timeout", "2",
                        "--metrics-listen", "127.0.0.1:0", *args, **kw).start()
        self.addCleanup(server.stop)
        server.metrics_port = metrics_port(server)
        self.assertTrue(wait_until(lambda: worker_pids(server)), "no worker")
        bystander = Bystander(server)
        bystander.start()
        self.addCleanup(bystander.finish)
        wait_until(lambda: bystander.calls >= 3 or bystander.failures)
        self.rss_before = workers_rss_kib(server)
        return server, bystander

    def assert_rss_bounded(self, server):
        self.assertLess(workers_rss_kib(server), self.rss_before + RSS_BOUND_KIB)

    def assert_errors(self, server, reason, count):
        got = wait_until(lambda: errors(server, reason) == count and count, timeout=WAIT_S)
        self.assertEqual(errors(server, reason), count, "reason=%s" % reason)
        return got

    def assert_logged_once(self, server, sock, text):
        lines = wait_until(lambda: log_lines_about(server, sock, text))
        time.sleep(0.3)  # a second line, if any, would come at once
        self.assertEqual(len(log_lines_about(server, sock, text)), 1, server.log())


def one_error_then_closed(test, conn, expect=None):
    replies, closed = conn.replies_until_close(timeout=WAIT_S)
    test.assertEqual(len(replies), 1, replies)
    test.assertIsInstance(replies[0], str)
    test.assertTrue(replies[0].startswith(RPC_PREFIX), replies[0])
    if expect is not None:
        test.assertEqual(replies[0], RPC_PREFIX + expect)
    test.assertTrue(closed, "the connection stayed open after the error")


class StreamErrorTest(HostileCase):
    LIMIT = 4096

    def test_bad_streams_counted_by_reason_and_logged_once(self):
        server, bystander = self.start("--max-message", str(self.LIMIT))
        over = packb({"echo": b"\x01" * (self.LIMIT - 20)})
        over = packb({"echo": b"\x01" * (self.LIMIT - 20 + self.LIMIT + 1 - len(over))})
        self.assertEqual(len(over), self.LIMIT + 1)
        cases = BAD_STREAMS + [(over, "too_large")]  # (bytes, reason)
        want = {}
        for data, reason in cases:
            with self.subTest(data=data[:8], reason=reason), server.connect() as c:
                c.send_raw(data)
                one_error_then_closed(self, c)
                want[reason] = want.get(reason, 0) + 1
                self.assert_logged_once(server, c.sock, "closing connection")
        for reason, count in want.items():
            self.assert_errors(server, reason, count)
        self.assert_rss_bounded(server)
        bystander.check(self)


class SlowlorisTest(HostileCase):
    def test_request_sent_a_byte_a_second_is_cut_by_the_request_timeout(self):
        server, bystander = self.start("--request-timeout", "2", "--idle-timeout", "1")
        request = packb({"echo": "never whole"})
        with server.connect() as c:
            started = time.monotonic()
            c.sock.settimeout(1.0)
            reply = None
            for byte in request[:-1]:  # never the last byte
                try:
                    c.send_raw(bytes([byte]))
                    reply = c.recv()
                    break
                except socket.timeout:  # no reply within the second: the next byte
                    continue
                except (BrokenPipeError, ConnectionResetError, EOFError):
                    break
            elapsed = time.monotonic() - started
            self.assertEqual(reply, RPC_PREFIX + "request not completed in time")
            self.assertGreaterEqual(elapsed, 1.5)  # not before the timeout...
            self.assertLess(elapsed, len(request) - 1)  # ...and before the last byte
            self.assertTrue(c.closed_by_server(timeout=WAIT_S))
            self.assert_logged_once(server, c.sock, "--request-timeout")
        self.assert_errors(server, "timeout", 1)
        bystander.check(self)

    def test_slow_requests_that_complete_in_time_are_answered(self):
        """Each request has its own clock: three requests, each whole in about 1.2 s of a 2 s
        timeout, 3.6 s on one connection in all."""
        server, bystander = self.start("--request-timeout", "2")
        with server.connect() as c:
            for i in range(3):
                request = packb({"echo": i})
                step = 1.2 / len(request)
                for byte in request:
                    c.send_raw(bytes([byte]))
                    time.sleep(step)
                self.assertEqual(c.recv(), i)
        self.assertEqual(errors(server, "timeout"), 0)
        bystander.check(self)

    def test_request_timeout_zero_turns_it_off(self):
        server, bystander = self.start("--request-timeout", "0", "--idle-timeout", "1")
        with server.connect() as c:
            c.send_raw(packb({"echo": "half"})[:3])
            self.assertFalse(c.closed_by_server(timeout=2.5))  # never idle, never timed out
        bystander.check(self)


class NeverReadsTest(HostileCase):
    REPLY = {"repeat": ["x" * 1024, 1024]}  # a 1 MiB reply to a 1 KiB request

    def test_client_that_never_reads_is_paused_then_closed_by_the_write_timeout(self):
        server, bystander = self.start("--write-timeout", "2")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(WAIT_S)
        sock.connect(("127.0.0.1", server.port))
        with sock:
            requests = packb(self.REPLY) * 40  # 40 MiB of replies asked for
            sock.sendall(requests)
            time.sleep(0.5)
            self.assert_rss_bounded(server)  # the output bound holds the rest back
            self.assertEqual(errors(server, "timeout"), 0)
            self.assert_errors(server, "timeout", 1)
            self.assert_logged_once(server, sock, "--write-timeout")
            received = 0
            try:
                while True:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        break
                    received += len(chunk)
            except ConnectionResetError:
                pass
            self.assertLess(received, 8 * MIB)  # nowhere near the 40 MiB asked for
        self.assert_rss_bounded(server)
        bystander.check(self)

    def test_slow_reader_that_keeps_reading_is_not_cut(self):
        """Progress, not completion, is what the write timeout asks for: 8 MiB read in small
        sips over more than the timeout."""
        server, bystander = self.start("--write-timeout", "1")
        with server.connect() as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.send_raw(packb(self.REPLY) * 8)
            got = 0
            while got < 8:
                time.sleep(0.01)
                data = c.sock.recv(65536)
                self.assertTrue(data, "closed while reading")
                c.unpacker.feed(data)
                for reply in c.unpacker:
                    self.assertEqual(len(reply), MIB)
                    got += 1
        self.assertEqual(errors(server, "timeout"), 0)
        bystander.check(self)


class SilentConnectionsTest(HostileCase):
    LIMIT = 20

    def test_silent_connections_past_the_limit_refused_the_rest_idle_out(self):
        server, bystander = self.start("--max-connections", str(self.LIMIT),
                                       "--idle-timeout", "2")
        socks = [socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)
                 for _ in range(2 * self.LIMIT)]
        try:
            time.sleep(0.5)  # well before the idle timeout
            still_open = [s for s in socks if not self.closed_now(s)]
            self.assertEqual(len(still_open), self.LIMIT - 1)  # the bystander holds one
            self.assert_errors(server, "connection_limit", self.LIMIT + 1)
            bystander.check(self)
            self.assertTrue(wait_until(lambda: all(self.closed_now(s) for s in still_open)),
                            "silent connections outlived the idle timeout")
            with server.connect() as c:  # room again
                self.assertEqual(c.call("in"), "in")
            self.assert_rss_bounded(server)
        finally:
            for s in socks:
                s.close()
        self.assertEqual(errors(server, "timeout"), 0)  # idling out is not an error
        self.assertIn(server.log().count("--max-connections"), (1, 2), server.log())  # <= 1/s
        bystander.check(self)

    @staticmethod
    def closed_now(sock):
        sock.settimeout(None)  # so that MSG_DONTWAIT, not Python's own wait, decides
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True


class HalfCloseTest(HostileCase):
    def test_half_closed_client_gets_every_reply_through_backpressure(self):
        server, bystander = self.start()
        with server.connect() as c:
            big = {"repeat": [b"y" * 1024, 3 * 1024]}  # 3 MiB: past the output bound
            c.send_raw(b"".join(packb(r) for r in (big, {"echo": 1}, {"sleep": 0.2}, big,
                                                    {"echo": 2})))
            c.sock.shutdown(socket.SHUT_WR)
            time.sleep(0.5)  # reading is paused; the EOF waits behind it
            replies, closed = c.replies_until_close(timeout=WAIT_S)
        self.assertEqual([len(r) if isinstance(r, bytes) else r for r in replies],
                         [3 * MIB, 1, "slept", 3 * MIB, 2])
        self.assertTrue(closed)
        bystander.check(self)


class AuthEnvelopeTest(HostileCase):
    SECRET = "hostile test secret"

    def test_bad_envelopes_counted_and_hostile_signed_data_refused(self):
        server, bystander = self.start("--max-message", "4096", secret=self.SECRET)
        good = harness.sign(self.SECRET, packb({"echo": 1}))
        refused = refused_envelopes(self.SECRET)
        with server.connect() as c:
            for raw in refused:
                c.send_raw(raw)
                self.assertEqual(c.recv(), AUTH_ERROR)
            c.send_raw(good)
            self.assertEqual(c.recv(), 1)
        self.assert_errors(server, "auth", len(refused))
        hostile_inner = HOSTILE_SIGNED_DATA
        with server.connect() as c:  # validly signed, invalid inside: refused, still usable
            for inner in hostile_inner:
                c.send_raw(harness.sign(self.SECRET, inner))
                reply = c.recv()
                self.assertTrue(reply.startswith(RPC_PREFIX), reply)
            c.send_raw(good)
            self.assertEqual(c.recv(), 1)
        self.assert_errors(server, "invalid_message", len(hostile_inner))
        with server.connect() as c:  # an envelope whose data declares 4 GiB: a stream error
            c.send_raw(b"\x82\xaaarrpc.sign\xd9\x40" + b"0" * 64 + b"\xa4data\xc6\xff\xff\xff\xff")
            one_error_then_closed(self, c)
        self.assert_errors(server, "too_large", 1)
        self.assert_rss_bounded(server)
        bystander.check(self)


class TlsGarbageTest(HostileCase):
    def test_garbage_and_silence_on_a_tls_port_counted_others_served(self):
        server, bystander = self.start("--tls-handshake-timeout", "1", tls=True)
        garbage = [
            b"\x00garbage" * 8192,                                   # no record at all
            b"\x16\x03\x01\xff\xff" + os.urandom(4096),              # a handshake record of junk
            packb({"echo": 1}) * 100,                                # plaintext arrpc
        ]
        for data in garbage:
            with self.subTest(data=data[:8]):
                with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as s:
                    try:
                        s.sendall(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.assertTrue(self.closed(s))
        self.assert_errors(server, "tls_handshake", len(garbage))
        # After a good handshake: a record that fails its integrity check ends the connection.
        with server.tls.wrap(socket.create_connection(("127.0.0.1", server.port),
                                                      timeout=WAIT_S)) as tls:
            tls.sendall(packb({"echo": "fine"}))
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(tls.recv(4096))
            self.assertEqual(next(unpacker), "fine")
            raw = socket.socket(fileno=os.dup(tls.fileno()))
            raw.sendall(b"\x17\x03\x03\x00\x40" + os.urandom(64))
            self.assertTrue(self.closed(raw))
            raw.close()
        with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S) as silent:
            self.assertTrue(self.closed(silent))
            self.assert_logged_once(server, silent, "--tls-handshake-timeout")
        self.assert_errors(server, "timeout", 1)
        self.assert_rss_bounded(server)
        bystander.check(self)

    def test_tls_record_trickled_a_byte_at_a_time_is_cut_by_the_idle_timeout(self):
        """Below the request: part of a TLS record gives no request byte, so the connection is
        idle (the request timeout cannot see it), and the idle timeout closes it."""
        server, bystander = self.start("--idle-timeout", "2", tls=True)
        with server.tls.wrap(socket.create_connection(("127.0.0.1", server.port),
                                                      timeout=WAIT_S)) as tls:
            raw = socket.socket(fileno=os.dup(tls.fileno()))
            with raw:
                raw.settimeout(0.5)
                closed = False
                for byte in (b"\x17\x03\x03\x00\x40" + bytes(64))[:30]:  # never whole
                    try:
                        raw.sendall(bytes([byte]))
                        while raw.recv(65536):  # session tickets; then the end
                            pass
                        closed = True
                    except socket.timeout:
                        continue
                    except (BrokenPipeError, ConnectionResetError):
                        closed = True
                    break
                self.assertTrue(closed, "a trickled TLS record kept the connection open")
        bystander.check(self)

    @staticmethod
    def closed(sock):
        sock.settimeout(WAIT_S)
        try:
            while sock.recv(65536):
                pass
            return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False


class ReplyLimitTest(HostileCase):
    LIMIT = 4096

    def test_reply_over_the_limit_becomes_an_rpc_exception_logged_once(self):
        server, bystander = self.start("--max-message", str(self.LIMIT))
        fits = {"repeat": ["a", self.LIMIT - 3]}   # str16: a 3-byte header
        over = {"repeat": ["a", self.LIMIT - 2]}   # one byte more
        self.assertLess(len(packb(over)), 32)      # the requests are tiny
        with server.connect() as c:
            self.assertEqual(c.call(fits), "a" * (self.LIMIT - 3))
            for _ in range(3):
                reply = c.call(over)
                self.assertTrue(reply.startswith(RPC_PREFIX + "the handler's reply is invalid"),
                                reply)
            self.assertEqual(c.call({"echo": "still open"}), "still open")
            self.assert_logged_once(server, c.sock, "the handler's reply was replaced")
        with server.connect() as c:  # a huge reply is refused the same way, memory bounded
            reply = c.call({"repeat": ["b" * 1024, 8 * 1024]})  # 8 MiB
            self.assertTrue(reply.startswith(RPC_PREFIX), reply)
        self.assert_errors(server, "invalid_reply", 4)
        self.assert_rss_bounded(server)
        bystander.check(self)



class TimeoutOptionsTest(unittest.TestCase):
    def test_new_timeouts_in_help_and_bad_values_refused(self):
        status, out, _ = harness.run_arrpcd("--help")
        self.assertEqual(status, 0)
        self.assertIn("--request-timeout", out)
        self.assertIn("--write-timeout", out)
        for opt in ("--request-timeout", "--write-timeout"):
            for bad in ("-1", "1.5", "x", "4294968"):
                with self.subTest(opt=opt, value=bad):
                    status, _, err = harness.run_arrpcd("--handler", "echo", opt, bad)
                    self.assertEqual(status, 2, err)
                    self.assertIn(opt, err)


if __name__ == "__main__":
    harness.main()
