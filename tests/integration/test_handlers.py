"""Handlers that do real work: a plugin's init and fini in every worker (start, stop, reload,
scale-down, a failing init), and what a call knows of its client (address, TLS identity,
signature). The demo plugin reports both: {"init_arg": _}, {"whoami": _}, and a "fini <pid>" line
per worker in the file named by ARRPC_DEMO_FINI_FILE."""
import os
import signal
import socket
import tempfile
import unittest

import msgpack

import harness
from harness import LIB_DIR, Conn, Server, Tls, pki, run_arrpcd
from test_master import alive, children, wait_until

COUNTER_PLUGIN = os.path.join(LIB_DIR, "arrpc-counter.so")
CONNECTIONS = 64  # enough that SO_REUSEPORT's hash reaches each of 2 workers


def temp_path(test):
    """A path in a directory removed after the test; the file itself does not exist yet."""
    d = tempfile.TemporaryDirectory(prefix="arrpc-handlers-")
    test.addCleanup(d.cleanup)
    return os.path.join(d.name, "file")


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def fini_lines(pids):
    return sorted("fini %d" % p for p in pids)


def answers_by_worker(port, request, workers=2):
    """{worker pid: answer to request} from new connections, until `workers` pids answered."""
    seen = {}
    for _ in range(CONNECTIONS):
        with Conn(port) as c:
            seen[c.call({"pid": 1})] = c.call(request)
        if len(seen) == workers:
            break
    return seen


class LifecycleTest(unittest.TestCase):
    def start(self, *args, **env):
        fini = temp_path(self)
        srv = Server(*args, tls=False, env=dict(ARRPC_DEMO_FINI_FILE=fini, **env)).start()
        self.addCleanup(srv.stop)
        return srv, fini

    def test_init_argument_in_every_worker_and_fini_at_stop(self):
        srv, fini = self.start("--workers", "2", "--handler-arg", "hello")
        seen = answers_by_worker(srv.port, {"init_arg": 1})
        self.assertEqual(list(seen.values()), ["hello", "hello"], seen)
        self.assertEqual(srv.stop(), 0, srv.log())
        self.assertEqual(sorted(read_lines(fini)), fini_lines(seen))

    def test_no_argument_is_nil(self):
        srv, _ = self.start("--workers", "1")
        with Conn(srv.port) as c:
            self.assertIsNone(c.call({"init_arg": 1}))

    def test_in_process_init_once_fini_after(self):
        srv, fini = self.start("--workers", "0", "--handler-arg", "solo")
        with Conn(srv.port) as c:
            self.assertEqual(c.call({"init_arg": 1}), "solo")
            self.assertEqual(c.call({"pid": 1}), srv.pid)
        self.assertEqual(read_lines(fini), [])
        self.assertEqual(srv.stop(), 0, srv.log())
        self.assertEqual(read_lines(fini), fini_lines([srv.pid]))

    def test_reload_runs_fini_in_retired_workers(self):
        srv, fini = self.start("--workers", "2", "--handler-arg", "a")
        old = wait_until(lambda: len(children(srv.pid)) == 2 and children(srv.pid))
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: sorted(read_lines(fini)) == fini_lines(old)),
                        (read_lines(fini), srv.log()))
        # fini runs just before a worker exits: wait for the exits themselves
        self.assertTrue(wait_until(lambda: not set(old) & set(children(srv.pid))))
        self.assertEqual(set(answers_by_worker(srv.port, {"init_arg": 1}).values()), {"a"})

    def test_scale_down_runs_fini_in_the_removed_worker(self):
        srv, fini = self.start("--workers", "2")
        old = wait_until(lambda: len(children(srv.pid)) == 2 and children(srv.pid))
        srv.signal(signal.SIGTTOU)
        self.assertTrue(wait_until(lambda: len(read_lines(fini)) == 1), srv.log())
        gone = wait_until(lambda: [p for p in old if not alive(p)])  # fini, then the exit
        self.assertEqual(read_lines(fini), fini_lines(gone))

    def test_failing_init_fails_the_start(self):
        for workers in ("2", "0"):
            with self.subTest(workers=workers):
                rc, _, err = run_arrpcd("--listen", "127.0.0.1:0", "--handler",
                                        harness.DEMO_PLUGIN, "--workers", workers,
                                        "--handler-arg", "fail:7")
                self.assertEqual(rc, 1, err)
                self.assertIn("arrpc_handler_init returned 7", err)

    def test_failing_init_fails_the_reload_and_the_old_workers_serve(self):
        fail = temp_path(self)
        srv, fini = self.start("--workers", "2", ARRPC_DEMO_INIT_FAIL_FILE=fail)
        old = wait_until(lambda: len(children(srv.pid)) == 2 and children(srv.pid))
        with open(fail, "w") as f:
            f.write("9\n")
        srv.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: "reload failed" in srv.log()), srv.log())
        self.assertIn("arrpc_handler_init returned 9", srv.log())
        self.assertEqual(sorted(answers_by_worker(srv.port, {"echo": 1})), sorted(old))
        self.assertEqual(read_lines(fini), [])  # the old ones still serve; new ones never did
        os.unlink(fail)
        self.assertEqual(srv.stop(), 0, srv.log())
        self.assertEqual(sorted(read_lines(fini)), fini_lines(old))

    def test_counter_example_holds_a_file_per_worker(self):
        log = temp_path(self)
        srv = Server("--workers", "0", "--handler-arg", log, tls=False,
                     handler=COUNTER_PLUGIN + ":counter").start()
        self.addCleanup(srv.stop)
        with Conn(srv.port) as c:
            counts = [c.call({})["count"] for _ in range(3)]
        self.assertEqual(counts, [1, 2, 3])
        self.assertEqual(srv.stop(), 0, srv.log())
        self.assertEqual(read_lines(log), ["%d answered 3" % srv.pid])

    def test_counter_example_without_its_file_does_not_start(self):
        rc, _, err = run_arrpcd("--listen", "127.0.0.1:0", "--workers", "1", "--handler",
                                COUNTER_PLUGIN + ":counter")
        self.assertEqual(rc, 1, err)
        self.assertIn("counter_init returned 22", err)  # EINVAL: no --handler-arg


class ContextTest(unittest.TestCase):
    def whoami(self, srv, **conn):
        with srv.connect(**conn) as c:
            return c.call({"whoami": 1}), "127.0.0.1:%d" % c.sock.getsockname()[1]

    def serve(self, **options):
        srv = Server("--workers", "1", **options).start()
        self.addCleanup(srv.stop)
        return srv

    def test_tcp(self):
        got, me = self.whoami(self.serve(tls=False))
        self.assertEqual(got, {"peer": me, "tls_peer": None, "signed": False})

    def test_signed(self):
        got, me = self.whoami(self.serve(tls=False, secret="s3"), secret="s3")
        self.assertEqual(got, {"peer": me, "tls_peer": None, "signed": True})

    def test_tls_without_client_certificate(self):
        got, me = self.whoami(self.serve(tls=True))
        self.assertEqual(got, {"peer": me, "tls_peer": None, "signed": False})

    def test_mutual_tls_names_the_client(self):
        p = pki()
        client_ca = p.make_ca("handlers-clientca")
        client = p.make_cert("handlers-client", ca=client_ca, names=(), client=True)
        srv = self.serve(tls=Tls(client_ca=client_ca[0]))
        got, me = self.whoami(srv, tls=Tls(client_cert=client))
        self.assertEqual(got, {"peer": me, "tls_peer": "/CN=handlers-client", "signed": False})

    def test_mutual_tls_resumed_session_still_names_the_client(self):
        """A resumed session presents no certificate: the name must come from the session."""
        p = pki()
        client_ca = p.make_ca("handlers-resume-ca")
        client = p.make_cert("handlers-resumed", ca=client_ca, names=(), client=True)
        srv = self.serve(tls=Tls(client_ca=client_ca[0]))
        ctx, session = Tls(client_cert=client).context(), None
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", srv.port), timeout=harness.IO_TIMEOUT)
            with ctx.wrap_socket(sock, server_hostname="localhost", session=session) as s:
                s.sendall(msgpack.packb({"whoami": 1}))
                replies, reply = msgpack.Unpacker(raw=False), None
                while reply is None:
                    replies.feed(s.recv(4096))
                    reply = next(replies, None)
                self.assertEqual(reply["tls_peer"], "/CN=handlers-resumed")
                reused, session = s.session_reused, s.session
        self.assertTrue(reused)



class ContextOnThreadsTest(ContextTest):
    """The same context when the call runs on a handler thread instead of the loop."""

    def serve(self, **options):
        srv = Server("--workers", "1", "--threads", "2", **options).start()
        self.addCleanup(srv.stop)
        return srv


if __name__ == "__main__":
    unittest.main()
