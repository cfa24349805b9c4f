"""test_conn_aging.py -- connection aging (--max-connection-age, --max-connection-age-jitter):
a connection past its age is closed at its next idle moment and counted, a busy one only once
everything it sent is answered, and no connection closes before its age; and TCP keepalive
(--tcp-keepalive) as the kernel shows it for the server's sockets (`ss -o`).

Ages are lower bounds the server cannot beat, so asserting "not closed before" is safe on a
slow machine; upper bounds are generous waits, not timings."""
import re
import shutil
import subprocess
import time
import unittest

import harness
from harness import Server
from test_metrics import metrics_port, scrape, total

TRANSPORTS = ("tcp", "tls")
SLACK_S = 20  # how long past its latest age a connection may take to close on a loaded machine


def aged(metrics):
    return total(scrape(metrics), "arrpc_server_connections_aged_total")


class ConnectionAging(unittest.TestCase):
    def start(self, *args):
        server = Server("--workers", "1", "--metrics-listen", "127.0.0.1:0", *args).start()
        self.addCleanup(server.stop)
        return server, metrics_port(server)

    def test_idle_connection_is_closed_after_its_age_and_counted(self):
        server, metrics = self.start("--max-connection-age", "1")
        with server.connect() as c:
            opened = time.monotonic()
            self.assertEqual(c.call({"echo": 1}), 1)
            self.assertTrue(c.closed_by_server(timeout=1 + SLACK_S))
            self.assertGreaterEqual(time.monotonic() - opened, 1.0)
        self.assertEqual(aged(metrics), 1)

    def test_busy_pipelined_connection_gets_every_reply_first(self):
        # Three calls of 0.7 s each, sent at once: the age (1 s) passes while the second runs.
        # The connection is not idle until the third reply is written; then it closes.
        server, metrics = self.start("--max-connection-age", "1", "--threads", "1")
        with server.connect() as c:
            c.send_raw(b"".join(c.pack({"sleep": 0.7}) for _ in range(3)))
            replies, closed = c.replies_until_close(timeout=3 * 0.7 + 1 + SLACK_S)
        self.assertEqual(replies, ["slept"] * 3)
        self.assertTrue(closed)
        self.assertEqual(aged(metrics), 1)

    def test_jitter_spreads_ages_within_bounds(self):
        server, metrics = self.start("--max-connection-age", "1", "--max-connection-age-jitter",
                                     "2")
        conns = [server.connect() for _ in range(6)]
        opened = time.monotonic()
        try:
            for c in conns:
                self.assertEqual(c.call({"echo": 0}), 0)
            for c in conns:
                left = max(0.1, opened + 3 + SLACK_S - time.monotonic())
                self.assertTrue(c.closed_by_server(timeout=left))
                self.assertGreaterEqual(time.monotonic() - opened, 1.0)  # never before the age
        finally:
            for c in conns:
                c.close()
        self.assertEqual(aged(metrics), 6)

    def test_off_by_default(self):
        server, metrics = self.start()
        with server.connect() as c:
            self.assertEqual(c.call({"echo": 1}), 1)
            self.assertFalse(c.closed_by_server(timeout=2.5))
            self.assertEqual(c.call({"echo": 2}), 2)
        self.assertEqual(aged(metrics), 0)

    def test_bad_values_are_refused(self):
        status, _, err = harness.run_arrpcd("--listen", "127.0.0.1:0", "--handler", "echo",
                                            "--max-connection-age", "-1")
        self.assertNotEqual(status, 0)
        status, _, err = harness.run_arrpcd("--listen", "127.0.0.1:0", "--handler", "echo",
                                            "--tcp-keepalive", "40000")
        self.assertNotEqual(status, 0)


SS = shutil.which("ss")


@unittest.skipUnless(SS, "ss (iproute2) is not installed: tools/install-deps.sh installs it")
class TcpKeepalive(unittest.TestCase):
    def keepalive_timers(self, port):
        """The keepalive timers of the server's side of connections on port, in seconds. ss
        writes them as "59sec", "1min2sec", "696ms", and seconds with a fraction as "6.700ms"
        (iproute2 6.1: the unit is wrong there, the digits are seconds)."""
        out = subprocess.run([SS, "-tno", "state", "established", "( sport = :%d )" % port],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        timers = []
        for m in re.finditer(r"timer:\(keepalive,(?:(\d+)min)?(?:(\d+)sec)?(?:([\d.]+)ms)?,",
                             out):
            minutes, seconds, ms = m.groups()
            t = int(minutes or 0) * 60 + int(seconds or 0)
            if ms:
                t += float(ms) if "." in ms else int(ms) / 1000
            timers.append(t)
        return timers

    def timers_with(self, *args):
        """The keepalive timers once the reply is acknowledged: until then the kernel shows the
        retransmission timer in their place (a delayed ACK takes up to 40 ms)."""
        with Server("--workers", "1", *args) as server, server.connect() as c:
            self.assertEqual(c.call({"echo": 1}), 1)
            for _ in range(20):
                timers = self.keepalive_timers(server.port)
                if timers:
                    break
                time.sleep(0.1)
            return timers

    def test_default_probes_after_a_minute(self):
        timers = self.timers_with()
        self.assertEqual(len(timers), 1, timers)
        self.assertGreater(timers[0], 30)
        self.assertLessEqual(timers[0], 60)

    def test_option_sets_the_idle_time(self):
        timers = self.timers_with("--tcp-keepalive", "7")
        self.assertEqual(len(timers), 1, timers)
        self.assertLessEqual(timers[0], 7)

    def test_zero_turns_it_off(self):
        self.assertEqual(self.timers_with("--tcp-keepalive", "0"), [])

    def test_in_process_server_too(self):
        timers = self.timers_with("--workers", "0", "--tcp-keepalive", "9")
        self.assertEqual(len(timers), 1, timers)
        self.assertLessEqual(timers[0], 9)


if __name__ == "__main__":
    harness.main()
