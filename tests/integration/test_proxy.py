"""test_proxy.py -- the PROXY protocol (v1 and v2) from trusted ranges: the address a header
carries becomes the peer for handlers ({"whoami": _} of the demo plugin) and for metrics
(remote_address); bad headers close the connection, counted by reason; a source outside the
ranges that sends a header is refused, and served as any client otherwise; a server without the
option serves a header's bytes as requests, as 0.5.0 does. Headers are built here with
struct, the way a balancer writes them.

ctest runs this file over TCP and over TLS: under TLS the header goes first on the raw socket,
then the handshake."""
import signal
import socket
import struct
import time
import unittest

import harness
from harness import Server
from test_master import wait_until
from test_metrics import metrics_port, scrape, total

TRANSPORTS = ("tcp", "tls")
TRUSTED = "127.0.0.0/8"
UNLISTED_RANGE = "127.0.0.2/32"  # clients from 127.0.0.1 are outside it
TLS = "True" if harness.TRANSPORT == "tls" else "False"  # the 0.5.0 label values
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
DEADLINE_S = 1  # --tls-handshake-timeout in the deadline case: header and handshake by then


def v1(src="192.0.2.7", sport=4242, family="TCP4", dst=None):
    dst = dst or ("198.51.100.1" if family == "TCP4" else "2001:db8::1")
    return ("PROXY %s %s %s %d 9000\r\n" % (family, src, dst, sport)).encode()


def v2(command=1, family=1, protocol=1, body=None, length=None):
    """A v2 header; body defaults to the addresses 192.0.2.7:4242 -> 198.51.100.1:9000 (IPv4)
    or 2001:db8::7:4242 -> 2001:db8::1:9000 (IPv6)."""
    if body is None:
        if family == 2:
            body = (socket.inet_pton(socket.AF_INET6, "2001:db8::7")
                    + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + struct.pack("!HH", 4242, 9000))
        else:
            body = socket.inet_aton("192.0.2.7") + socket.inet_aton("198.51.100.1") + \
                struct.pack("!HH", 4242, 9000)
    length = len(body) if length is None else length
    return V2_SIG + struct.pack("!BBH", 0x20 | command, family << 4 | protocol, length) + body


def tlv(kind, value):
    return struct.pack("!BH", kind, len(value)) + value


class ProxyServerCase(unittest.TestCase):
    """One arrpcd for the class, trusting the ranges in RANGES. One worker: every connection's
    counts land in the one block /metrics sums."""
    RANGES = None

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--workers", "1", "--proxy-protocol", cls.RANGES,
                            "--metrics-listen", "127.0.0.1:0",
                            "--tls-handshake-timeout", str(DEADLINE_S)).start()
        cls.metrics = metrics_port(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()


class ProxyProtocol(ProxyServerCase):
    RANGES = TRUSTED

    def whoami(self, header):
        with self.server.connect(preamble=header) as c:
            return c.call({"whoami": 1})["peer"]

    def errors(self, reason):
        return total(scrape(self.metrics), "arrpc_server_errors_total", reason=reason,
                     remote_address="127.0.0.1", tls=TLS)

    def assert_refused(self, header, reason, then_close=False):
        before = self.errors(reason)
        with self.server.connect(preamble=header, tls=None) as c:  # no handshake: never reached
            if then_close:
                c.sock.shutdown(socket.SHUT_WR)
            self.assertTrue(c.closed_by_server(timeout=DEADLINE_S + 10), reason)
        self.assertEqual(self.errors(reason), before + 1, reason)

    def test_v1_and_v2_addresses_become_the_peer(self):
        cases = [
            (v1(), "192.0.2.7:4242"),
            (v1("2001:db8::7", family="TCP6"), "2001:db8::7:4242"),
            (v2(), "192.0.2.7:4242"),
            (v2(family=2), "2001:db8::7:4242"),
            (v2(body=v2()[16:] + tlv(0x05, b"unique-id") + tlv(0x04, b"")), "192.0.2.7:4242"),
        ]
        for header, peer in cases:
            self.assertEqual(self.whoami(header), peer, header)

    def test_local_unknown_and_unspec_keep_the_real_peer(self):
        for header in (b"PROXY UNKNOWN\r\n",
                       b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
                       v2(command=0, family=0, protocol=0, body=b""),
                       v2(family=0, protocol=0, body=b"")):
            self.assertTrue(self.whoami(header).startswith("127.0.0.1:"), header)

    def test_requests_after_a_local_header_count_under_the_real_peer(self):
        # A fresh worker, whose first metrics row goes to a carried address: requests after a
        # LOCAL header must still count under the connection's own address, not that row.
        with Server("--workers", "1", "--proxy-protocol", TRUSTED,
                    "--metrics-listen", "127.0.0.1:0") as s:
            port = metrics_port(s)
            with s.connect(preamble=v1("192.0.2.99")) as c:
                c.call({"n": 0})
            with s.connect(preamble=v2(command=0, family=0, protocol=0, body=b"")) as c:
                for i in range(4):
                    c.call({"n": i})
            sample = scrape(port)
        self.assertEqual(total(sample, "arrpc_server_req_seconds_count",
                               remote_address="192.0.2.99"), 1)
        self.assertEqual(total(sample, "arrpc_server_req_seconds_count",
                               remote_address="127.0.0.1"), 4)

    def test_carried_address_survives_a_hand_over(self):
        # A reload hands plain-TCP connections to the new worker: the header is not read again,
        # the address it carried travels with the connection.
        if self.server.tls:
            self.skipTest("TLS connections stay with their worker on reload")
        with Server("--workers", "1", "--proxy-protocol", TRUSTED) as s, \
                s.connect(preamble=v1("192.0.2.8", 4343)) as c:
            first = c.call({"pid": 1})
            s.signal(signal.SIGHUP)
            self.assertTrue(wait_until(lambda: c.call({"pid": 1}) != first, timeout=30))
            self.assertEqual(c.call({"whoami": 1})["peer"], "192.0.2.8:4343")

    def test_metrics_name_the_carried_address(self):
        with self.server.connect(preamble=v1("203.0.113.9", 5000)) as c:
            for _ in range(3):
                c.call({"n": 1})
        sample = scrape(self.metrics)
        self.assertEqual(total(sample, "arrpc_server_req_seconds_count",
                               remote_address="203.0.113.9"), 3)

    def test_requests_in_the_same_segment_as_the_header(self):
        if self.server.tls:
            self.skipTest("under TLS the handshake comes between the header and requests")
        with self.server.connect(tls=None) as c:
            c.send_raw(v2() + b"".join(c.pack({"n": i}) for i in range(5)))
            self.assertEqual([c.recv() for _ in range(5)], [{"n": i} for i in range(5)])
            self.assertEqual(c.call({"whoami": 1})["peer"], "192.0.2.7:4242")

    def test_bad_headers_close_and_count_by_reason(self):
        cases = [
            (b"\x81\xa6whoami\x01", "proxy_missing"),
            (b"GET / HTTP/1.0\r\n\r\n", "proxy_missing"),
            (b"PROXY TCP4 192.0.2.7 nothing 1 2\r\n", "proxy_invalid"),
            (v2(protocol=2), "proxy_invalid"),
            (v2(body=v2()[16:] + b"\x05\x00\x09abc"), "proxy_invalid"),  # TLV past the end
            (b"PROXY UNKNOWN " + b"x" * 120, "proxy_too_long"),
            (v2(length=2000, body=b"\0" * 2000), "proxy_too_long"),
        ]
        for header, reason in cases:
            self.assert_refused(header, reason)

    def test_header_cut_by_close_or_deadline(self):
        self.assert_refused(b"PROXY TCP4 192.0", "proxy_truncated", then_close=True)
        self.assert_refused(v2()[:20], "proxy_truncated")  # waits for the deadline
        self.assert_refused(b"", "proxy_truncated")        # nothing at all by the deadline

    def test_refusals_are_logged_not_flooded(self):
        for _ in range(5):
            self.assert_refused(b"\x00", "proxy_missing")
        lines = [l for l in self.server.log().splitlines() if "(--proxy-protocol" in l]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLess(len(lines), 5 + 12)  # at most one a second over the whole class


class UntrustedSources(ProxyServerCase):
    """A source outside the ranges (here 127.0.0.1, with only 127.0.0.2 listed) must not send a
    header: one that does is refused; anything else is an ordinary client, not a byte lost."""
    RANGES = UNLISTED_RANGE

    def untrusted(self):
        return total(scrape(self.metrics), "arrpc_server_errors_total", reason="proxy_untrusted",
                     remote_address="127.0.0.1", tls=TLS)

    def test_a_header_is_refused_and_counted(self):
        for header in (v1(), v2(), b"PROXY UNKNOWN\r\n", V2_SIG):
            before = self.untrusted()
            with self.server.connect(preamble=header, tls=None) as c:
                self.assertTrue(c.closed_by_server(timeout=10), header)
            self.assertEqual(self.untrusted(), before + 1, header)
        lines = [l for l in self.server.log().splitlines() if "source not listed" in l]
        self.assertGreaterEqual(len(lines), 1)

    def test_requests_starting_with_p_are_answered(self):
        # 0x50 is "P", the first byte of a v1 header, and also the request 80 (a fixint).
        before = self.untrusted()
        with self.server.connect() as c:
            c.send_raw(b"P")  # alone: answered although nothing completes or refutes a header
            self.assertEqual(c.recv(), 80)
            c.send_raw(b"P" + b"".join(c.pack({"n": i}) for i in range(5)))  # pipelined
            self.assertEqual([c.recv() for _ in range(6)], [80] + [{"n": i} for i in range(5)])
        with self.server.connect(nodelay=True) as c:
            for byte in b"PROXX" + c.pack({"n": 1}):  # one byte at a time, "PROXY" almost
                c.send_raw(bytes([byte]))
            self.assertEqual([c.recv() for _ in range(6)], list(b"PROXX") + [{"n": 1}])
        with self.server.connect() as c:
            c.send_raw(b"PROXX" + b"".join(c.pack({"n": i}) for i in range(3)))
            self.assertEqual([c.recv() for _ in range(8)],
                             list(b"PROXX") + [{"n": i} for i in range(3)])
            self.assertTrue(c.call({"whoami": 1})["peer"].startswith("127.0.0.1:"))
        self.assertEqual(self.untrusted(), before)

    def test_ordinary_clients_are_served(self):
        # Under TLS the handshake's first byte (0x16) settles it at once.
        with self.server.connect() as c:
            self.assertEqual([c.call({"n": i}) for i in range(3)], [{"n": i} for i in range(3)])
            c.send_raw(b"".join(c.pack({"n": i}) for i in range(20)))
            self.assertEqual([c.recv() for _ in range(20)], [{"n": i} for i in range(20)])

    def test_a_silent_client_outlives_the_header_deadline(self):
        # It is not expected to send a header, so the header's deadline does not apply to it.
        if self.server.tls:
            self.skipTest("under TLS the handshake's deadline applies, as to any client")
        with self.server.connect() as c:
            time.sleep(DEADLINE_S + 1)
            self.assertEqual(c.call({"n": 1}), {"n": 1})

    def test_a_listed_source_still_sends_its_header(self):
        with self.server.connect(preamble=v1("192.0.2.5", 4000), source="127.0.0.2") as c:
            self.assertEqual(c.call({"whoami": 1})["peer"], "192.0.2.5:4000")


class WithoutTrust(unittest.TestCase):
    def test_without_the_option_a_header_is_served(self):
        # As in 0.5.0, no header is looked for. The bytes of a v1 header are all ASCII, which
        # MessagePack reads as small integers: each is a request the demo handler echoes.
        with Server() as s, s.connect() as c:
            header = v1()
            c.send_raw(header)
            self.assertEqual([c.recv() for _ in header], list(header))
            self.assertTrue(c.call({"whoami": 1})["peer"].startswith("127.0.0.1:"))

    def test_bad_ranges_are_refused_at_start(self):
        for spec in ("10.0.0.1/8", "10.0.0.0/33", "localhost", "", "10.0.0.0/8,"):
            status, _, err = harness.run_arrpcd("--listen", "127.0.0.1:0", "--handler", "echo",
                                                "--proxy-protocol", spec)
            self.assertNotEqual(status, 0, spec)
            self.assertIn("proxy protocol", err, spec)


if __name__ == "__main__":
    harness.main()
