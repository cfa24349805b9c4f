"""arrpc.Server beyond one process and one thread: waiting handlers run in parallel by default,
workers=2 answers from two processes, a stuck handler is replaced, TLS (repeated sends, the
self-signed mode, mutual TLS), auth, and metrics on their port for server and client."""
import os
import socket
import threading
import time
import urllib.request

import pyharness
from pyharness import arrpc, harness
from arrpc.error import ConnectException, RpcException

SLEEP_S = 0.3  # each slow call; eight of them in parallel take about this long, not 8x


def handler(message):
    if message == "pid":
        return os.getpid()
    if message == "spin":
        while True:
            pass
    if isinstance(message, dict) and "sleep" in message:
        time.sleep(message["sleep"])
    return message


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port, path="/metrics"):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                timeout=harness.IO_TIMEOUT) as reply:
        return reply.read().decode()


def parallel_sleeps(port, count):
    """count clients each send one slow call at once; returns (seconds taken, replies)."""
    replies = [None] * count

    def one(i):
        replies[i] = arrpc.Client("127.0.0.1", port).send({"sleep": SLEEP_S, "i": i})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(harness.IO_TIMEOUT)
    return time.monotonic() - start, replies


class Parallel(harness.unittest.TestCase):
    def test_waiting_handlers_do_not_hold_up_other_connections(self):
        with pyharness.serve(handler) as server:  # default settings: one process
            took, replies = parallel_sleeps(server.port, 8)
            self.assertEqual(replies, [{"sleep": SLEEP_S, "i": i} for i in range(8)])
            # one after the other would take 8 * SLEEP_S = 2.4 s
            self.assertLess(took, 4 * SLEEP_S, "the calls ran one at a time")

    def test_threads_0_runs_handlers_in_the_loop(self):
        with pyharness.serve(handler, threads=0) as server:
            took, _ = parallel_sleeps(server.port, 3)
            self.assertGreaterEqual(took, 3 * SLEEP_S)


class Workers(harness.unittest.TestCase):
    def test_two_workers_two_pids(self):
        with pyharness.serve(handler, workers=2) as server:
            pids = set()
            deadline = time.monotonic() + 30
            while len(pids) < 2 and time.monotonic() < deadline:
                with pyharness.client(server) as cli:
                    pids.add(cli.send("pid"))
            self.assertEqual(len(pids), 2)
            self.assertNotIn(os.getpid(), pids)

    def test_stuck_handler_is_replaced(self):
        with pyharness.serve(handler, workers=1, handler_timeout=1) as server:
            with pyharness.client(server) as cli:
                before = cli.send("pid")
                with self.assertRaises((RpcException, ConnectException)):
                    cli.send("spin")
            with pyharness.client(server) as cli:
                self.assertNotEqual(cli.send("pid"), before)
                self.assertEqual(cli.send("alive"), "alive")

    def test_metrics_on_their_port(self):
        port = free_port()
        with pyharness.serve(handler, metrics=True, metrics_host="127.0.0.1",
                             metrics_port=port) as server:
            with pyharness.client(server) as cli:
                for i in range(3):
                    cli.send(i)
            text = fetch(port)
        self.assertIn('handler_func="handler"', text)
        counts = [line for line in text.splitlines()
                  if line.startswith("arrpc_server_req_seconds_count")]
        self.assertTrue(counts, text)
        self.assertEqual(sum(float(line.split()[-1]) for line in counts), 3.0)


class Tls(harness.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = harness.pki()
        cls.cert, cls.key = cls.pki.server

    def test_repeated_sends_over_tls(self):
        # 0.5.0's TLS client failed its second send with EBADF
        with pyharness.serve(handler, tls_certfile=self.cert, tls_keyfile=self.key) as server:
            with pyharness.client(server, tls_cafile=self.pki.ca[0]) as cli:
                for i in range(5):
                    self.assertEqual(cli.send({"n": i}), {"n": i})
            with pyharness.client(server, tls_cafile=self.cert, tls_self_signed=True) as cli:
                self.assertEqual(cli.send_batch([1, 2]), [1, 2])

    def test_tls_with_auth(self):
        with pyharness.serve(handler, tls_certfile=self.cert, tls_keyfile=self.key,
                             auth_secret="s3cret") as server:
            cli = pyharness.client(server, tls_cafile=self.pki.ca[0], auth_secret="s3cret")
            self.assertEqual(cli.send("signed"), "signed")

    def test_mutual_tls(self):
        client_cert = self.pki.make_cert("pyclient", client=True)
        with pyharness.serve(handler, tls_certfile=self.cert, tls_keyfile=self.key,
                             tls_client_ca=self.pki.ca[0]) as server:
            cli = pyharness.client(server, tls_cafile=self.pki.ca[0],
                                   tls_certfile=client_cert[0], tls_keyfile=client_cert[1])
            self.assertEqual(cli.send("mtls"), "mtls")
            anonymous = pyharness.client(server, tls_cafile=self.pki.ca[0], con_max_retries=1)
            with self.assertRaises(ConnectException):
                anonymous.send("no certificate")


class ClientMetrics(harness.unittest.TestCase):
    def test_client_metrics_on_their_port(self):
        with pyharness.serve(handler) as server:
            cli = pyharness.client(server, metrics=True, metrics_host="127.0.0.1",
                                   metrics_port=0)
            cli.send(1)
            cli.send(2)
            text = fetch(cli.metrics_port)
        lines = [line for line in text.splitlines()
                 if line.startswith("arrpc_client_req_seconds_count")]
        self.assertEqual(sum(float(line.split()[-1]) for line in lines), 2.0, text)


if __name__ == "__main__":
    pyharness.main()
