"""test_tls.py -- what only TLS has: arrpc 0.5.0's TLS client (a handshake per request), the
versions and suites refused, mutual TLS, certificate errors as the client sees them, the handshake
deadline, session resumption, and certificate rotation on SIGHUP under load.

The protocol, auth and client cases run over TLS as well: ctest runs those files a second time
with ARRPC_TRANSPORT=tls (see harness.py). Certificates are made here by the openssl CLI."""
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest

import msgpack

import harness
from harness import AUTH_ERROR, BIN_DIR, RPC_PREFIX, Server, Tls, pki

ARRPC_CALL = os.path.join(BIN_DIR, "arrpc-call")
DRIVER = os.path.join(BIN_DIR, "client_driver")
EXIT_TLS = 8
CALL_TIMEOUT = 30


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def py050_call(port, obj, cafile, self_signed=False, secret=None, server_name="localhost"):
    """One request as arrpc 0.5.0's TLS client sends it: a new connection and handshake each
    time (stdlib ssl), the request packed (and signed), one reply unpacked."""
    ctx = ssl.create_default_context(cafile=cafile)
    if self_signed:
        ctx.check_hostname = False
    data = packb(obj)
    if secret is not None:
        data = harness.sign(secret, data)
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            s.sendall(data)
            unpacker = msgpack.Unpacker(raw=False)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise EOFError("closed before the reply")
                unpacker.feed(chunk)
                for reply in unpacker:
                    return reply


def arrpc_call(port, *args):
    p = subprocess.run([ARRPC_CALL, "--port", str(port), "--retries", "1"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CALL_TIMEOUT)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def s_client(port, *args):
    """openssl s_client's output (stdout and stderr) for one connection that sends nothing."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-CAfile", pki().ca[0]] + list(args), input=b"",
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=CALL_TIMEOUT)
    return p.stdout.decode(errors="replace")


def peer_serial(port):
    """The serial number of the certificate a new TLS connection is served with."""
    ctx = ssl.create_default_context(cafile=pki().ca[0])
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der,
                       stdout=subprocess.PIPE, check=True, timeout=CALL_TIMEOUT)
    return int(p.stdout.decode().strip().split("=", 1)[1], 16)


# -- a hand-made ClientHello: the client side of OpenSSL 3 cannot even offer RC4 or 3DES --------

RC4 = [0x0005, 0xC011, 0xC007]
DES3 = [0x000A, 0xC012, 0xC008]
NULL = [0x0002, 0x003B, 0xC006, 0xC010]
CBC = [0x002F, 0xC009, 0xC013, 0xC023, 0xC027]
AEAD = [0xC02B]  # ECDHE-ECDSA-AES128-GCM-SHA256: the control that must be accepted


def client_hello(suites, version=0x0303):
    def ext(kind, body):
        return struct.pack(">HH", kind, len(body)) + body
    groups = struct.pack(">HHH", 4, 0x0017, 0x001d)
    sigalgs = struct.pack(">HHHH", 6, 0x0403, 0x0804, 0x0401)
    exts = ext(0x000a, groups) + ext(0x000b, b"\x01\x00") + ext(0x000d, sigalgs)
    body = (struct.pack(">H", version) + os.urandom(32) + b"\x00" +
            struct.pack(">H", 2 * len(suites)) + b"".join(struct.pack(">H", s) for s in suites) +
            b"\x01\x00" + struct.pack(">H", len(exts)) + exts)
    hs = b"\x01" + struct.pack(">I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def hello_answer(port, suites, version=0x0303):
    """'server_hello', 'alert' or 'closed': what the server answers a ClientHello with."""
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT) as s:
        s.sendall(client_hello(suites, version))
        head = b""
        try:
            while len(head) < 6:
                chunk = s.recv(6 - len(head))
                if not chunk:
                    break
                head += chunk
        except ConnectionResetError:
            pass
    if len(head) >= 6 and head[0] == 0x16 and head[5] == 0x02:
        return "server_hello"
    if head[:1] == b"\x15":
        return "alert"
    return "closed"


class Py050TlsClientTest(unittest.TestCase):
    """Python's ssl as arrpc 0.5.0's client uses it: a handshake on every request."""

    def test_known_ca_each_request_a_new_handshake(self):
        with Server(tls=True) as srv:
            for i in range(5):
                self.assertEqual(py050_call(srv.port, {"echo": i}, pki().ca[0]), i)
            self.assertEqual(py050_call(srv.port, {"fail": "boom"}, pki().ca[0]),
                             RPC_PREFIX + "boom")

    def test_self_signed_server_certificate_as_ca(self):
        p = pki()
        cert, key = p.path("selfsigned.crt"), p.path("selfsigned.key")
        harness.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "30",
                        "-subj", "/CN=some other name")
        with Server(tls=Tls(cert, key)) as srv:
            self.assertEqual(py050_call(srv.port, {"echo": "ss"}, cert, self_signed=True), "ss")
            rc, out, err = arrpc_call(srv.port, "--tls-cafile", cert, "--tls-self-signed",
                                      '{"echo": "c"}')
            self.assertEqual((rc, out.strip()), (0, '"c"'), err)

    def test_with_auth(self):
        with Server(secret="s3cret", tls=True) as srv:
            self.assertEqual(py050_call(srv.port, {"echo": 7}, pki().ca[0], secret="s3cret"), 7)
            self.assertEqual(py050_call(srv.port, {"echo": 7}, pki().ca[0], secret="wrong"),
                             AUTH_ERROR)
            self.assertEqual(py050_call(srv.port, {"echo": 7}, pki().ca[0]), AUTH_ERROR)


class PolicyTest(unittest.TestCase):
    """TLS 1.2 and 1.3 with AEAD suites only."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(tls=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_tls12_and_tls13_connect(self):
        for flag, proto in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(flag=flag):
                out = s_client(self.server.port, flag)
                self.assertRegex(out, r"New, %s, Cipher is \S+" % proto)
                self.assertNotIn("Cipher is (NONE)", out)
                self.assertIn("Verify return code: 0 (ok)", out)

    def test_server_order_picks_the_suite_version_announces(self):
        """A client offering AES-GCM first still gets the suite family the server prefers, and
        that family is the one `arrpcd --version` names (ChaCha20 on a wolfSSL without AES-NI)."""
        status, out, _ = harness.run_arrpcd("--version")
        self.assertEqual(status, 0)
        chacha_first = "ChaCha20-Poly1305 first" in out
        self.assertTrue(chacha_first or "AES-GCM first" in out, out)
        offers = (("-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256",
                   "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"),
                  ("-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
                   "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"),
                  ("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
                   "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-GCM-SHA256"))
        for flag, option, offer, chacha, aes in offers:
            with self.subTest(offer=offer):
                out = s_client(self.server.port, flag, option, offer)
                self.assertIn("Cipher is %s" % (chacha if chacha_first else aes), out)

    def test_tls11_refused(self):
        out = s_client(self.server.port, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
        self.assertIn("Cipher is (NONE)", out)
        self.assertEqual(hello_answer(self.server.port, CBC, version=0x0302), "alert")

    def test_weak_cipher_lists_refused_by_s_client(self):
        for ciphers in ("NULL:eNULL", "AES128-SHA:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"):
            with self.subTest(ciphers=ciphers):
                out = s_client(self.server.port, "-tls1_2", "-cipher", ciphers + ":@SECLEVEL=0")
                self.assertIn("Cipher is (NONE)", out)

    def test_null_rc4_3des_cbc_suites_refused(self):
        self.assertEqual(hello_answer(self.server.port, AEAD), "server_hello")  # the control
        for name, suites in (("NULL", NULL), ("RC4", RC4), ("3DES", DES3), ("CBC", CBC)):
            with self.subTest(suites=name):
                self.assertEqual(hello_answer(self.server.port, suites), "alert")

    def test_plain_client_on_tls_port_closed_and_others_go_on(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as s:
            s.sendall(packb({"echo": 1}) * 100)  # not a TLS record
            self.assertEqual(py050_call(self.server.port, {"echo": 2}, pki().ca[0]), 2)
            closed = False
            try:
                while s.recv(4096):  # at most an alert, then the end
                    pass
                closed = True
            except ConnectionResetError:
                closed = True
            self.assertTrue(closed)


class HandshakeDeadlineTest(unittest.TestCase):
    def test_silent_and_slow_handshakes_closed_others_served(self):
        with Server("--tls-handshake-timeout", "1", tls=True) as srv:
            silent = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            slow = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            slow.sendall(client_hello(AEAD)[:20])  # half a ClientHello, then nothing
            start = time.monotonic()
            for i in range(3):  # served meanwhile, without waiting for the stuck ones
                self.assertEqual(py050_call(srv.port, {"echo": i}, pki().ca[0]), i)
            self.assertLess(time.monotonic() - start, 1.0)
            for s in (silent, slow):
                with s:
                    try:
                        self.assertEqual(s.recv(100), b"")
                    except ConnectionResetError:
                        pass
            self.assertLess(time.monotonic() - start, 5.0)


class CertificateErrorsTest(unittest.TestCase):
    """Each failure reaches arrpc-call (the C client) as exit status 8 with a clear reason."""

    def check_refused(self, port, args, reason):
        rc, out, err = arrpc_call(port, *args, '{"echo": 1}')
        self.assertEqual(rc, EXIT_TLS, err)
        self.assertIn(reason, err)
        self.assertEqual(out, "")

    def test_expired_certificate(self):
        with Server(tls=Tls(*pki().make_cert("expired", expired=True))) as srv:
            self.check_refused(srv.port, Tls().client_args(), "certificate has expired")

    def test_wrong_ca(self):
        other_ca = pki().make_ca("otherca")
        with Server(tls=True) as srv:
            self.check_refused(srv.port, ["--tls-cafile", other_ca[0]],
                               "not signed by a trusted CA")

    def test_hostname_mismatch(self):
        with Server(tls=True) as srv:
            self.check_refused(srv.port, ["--tls-cafile", pki().ca[0], "--tls-server-name",
                                          "wrong.example"], "not for this host name")
            for name in ("localhost", "127.0.0.1"):  # the names the certificate has
                rc, out, err = arrpc_call(srv.port, "--tls-cafile", pki().ca[0],
                                          "--tls-server-name", name, '{"echo": 1}')
                self.assertEqual((rc, out.strip()), (0, "1"), err)

    def test_default_name_is_the_host(self):
        p = pki()
        with Server(tls=Tls(*p.make_cert("dnsonly", names=("localhost",)))) as srv:
            self.check_refused(srv.port, ["--tls-cafile", p.ca[0]], "not for this host name")
            rc, out, err = arrpc_call(srv.port, "--host", "localhost", "--tls-cafile", p.ca[0],
                                      '{"echo": 1}')
            self.assertEqual((rc, out.strip()), (0, "1"), err)


class MutualTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        p = pki()
        cls.client_ca = p.make_ca("clientca")
        cls.good = p.make_cert("goodclient", ca=cls.client_ca, names=(), client=True)
        cls.stranger = p.make_cert("strangerclient", names=(), client=True)  # the server's CA
        cls.server = Server(tls=Tls(client_ca=cls.client_ca[0])).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def call(self, *extra):
        return arrpc_call(self.server.port, *(Tls().client_args() + list(extra)),
                          '{"echo": "m"}')

    def test_client_with_certificate_served(self):
        rc, out, err = self.call("--tls-cert", self.good[0], "--tls-key", self.good[1])
        self.assertEqual((rc, out.strip()), (0, '"m"'), err)
        with harness.Conn(self.server.port, tls=Tls(client_cert=self.good)) as c:
            self.assertEqual(c.call({"echo": 3}), 3)

    def test_client_without_certificate_refused(self):
        rc, out, err = self.call()
        self.assertEqual(rc, EXIT_TLS, err)
        self.assertRegex(err, r"refused the connection with the alert '[^']+'")

    def test_client_certificate_from_another_ca_refused(self):
        rc, out, err = self.call("--tls-cert", self.stranger[0], "--tls-key", self.stranger[1])
        self.assertEqual(rc, EXIT_TLS, err)
        self.assertRegex(err, r"refused the connection with the alert '[^']+'")


class Driver:
    """client_driver (the C client) with TLS options; one command line in, one line out."""

    def __init__(self, port, *args):
        self.proc = subprocess.Popen([DRIVER, "--port", str(port)] + list(args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def command(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        return self.proc.stdout.readline().decode().strip()

    def send(self, obj):
        return self.command("send " + packb(obj).hex())

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        log = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        return log


class SessionTest(unittest.TestCase):
    def test_one_session_kept_and_resumed_on_any_worker_and_after_reload(self):
        """Every worker (and generation) of a server seals tickets with the same key."""
        with Server("--workers", "2", tls=True) as srv:
            d = Driver(srv.port, "--debug", *Tls().client_args())
            try:
                for i in range(3):
                    self.assertTrue(d.send({"echo": i}).startswith("ok "))
                for i in range(6):  # SO_REUSEPORT spreads these over both workers
                    self.assertEqual(d.command("close"), "ok")
                    self.assertTrue(d.send({"echo": i}).startswith("ok "))
                srv.signal(signal.SIGHUP)
                deadline = time.monotonic() + 15
                while "generation 2 serving" not in srv.log() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(d.command("close"), "ok")
                self.assertTrue(d.send({"echo": "after reload"}).startswith("ok "))
            finally:
                log = d.stop()
            handshakes = [l for l in log.splitlines() if "client: TLS with" in l]
            self.assertEqual(len(handshakes), 8, log)  # one per connection, not per request
            self.assertNotIn("(resumed)", handshakes[0])
            self.assertTrue(all("(resumed)" in h for h in handshakes[1:]), log)


class BackpressureTest(unittest.TestCase):
    def test_pipelined_large_replies_survive_backpressure(self):
        """24 MiB of pipelined requests and replies through one TLS connection: the worker stops
        reading above its output mark and must resume from what wolfSSL holds."""
        request = packb({"echo": b"p" * (1 << 20)}).hex()
        with Server("--workers", "1", tls=True) as srv:
            d = Driver(srv.port, "--timeout", "60000", *Tls().client_args())
            try:
                first = d.command("batch " + " ".join([request] * 24))
                lines = [d.proc.stdout.readline().decode() for _ in range(24)]
            finally:
                d.stop()
        self.assertEqual(first, "ok 24")
        self.assertTrue(all(l.startswith("OK c600100000") for l in lines), [l[:40] for l in lines])


class RotationTest(unittest.TestCase):
    """SIGHUP re-reads the certificate: new connections get it; the old worker keeps its TLS
    connections until the drain deadline and then closes each while idle; our clients never see
    a failed request."""

    def setUp(self):
        p = pki()
        self.dir = os.path.join(p.dir, "rotation-%d" % id(self))
        os.makedirs(self.dir)
        self.cert, self.key = os.path.join(self.dir, "c.crt"), os.path.join(self.dir, "c.key")
        self.install(p.make_cert("rot1-%d" % id(self), serial=1001))

    def install(self, pair):
        tmp = self.cert + ".new", self.key + ".new"
        shutil.copyfile(pair[0], tmp[0])
        shutil.copyfile(pair[1], tmp[1])
        os.replace(tmp[1], self.key)
        os.replace(tmp[0], self.cert)

    def wait_serial(self, port, serial, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if peer_serial(port) == serial:
                return True
            time.sleep(0.1)
        return False

    def test_rotated_certificate_served_after_hup_without_failed_requests(self):
        tls = Tls(self.cert, self.key)
        with Server("--workers", "2", "--drain-timeout", "1", tls=tls) as srv:
            self.assertEqual(peer_serial(srv.port), 1001)
            stop = threading.Event()
            results = []

            def load():
                d = Driver(srv.port, "--retries", "5", "--backoff", "100", *tls.client_args())
                ok = bad = 0
                i = 0
                while not stop.is_set():
                    answer = d.send({"echo": i})
                    if answer.startswith("ok "):
                        ok += 1
                    else:
                        bad += 1
                        results.append(answer)
                    i += 1
                d.stop()
                results.append((ok, bad))

            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            try:
                self.reload_twice(srv)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=60)
            self.assertEqual(peer_serial(srv.port), 2002)
            failures = [r for r in results if not isinstance(r, tuple)]
            counts = [r for r in results if isinstance(r, tuple)]
            self.assertEqual(failures, [], srv.log())
            self.assertEqual(len(counts), 4)
            self.assertTrue(all(ok > 50 for ok, _ in counts), counts)
            self.assertIn("reload failed", srv.log())
        if os.environ.get("ARRPC_TEST_SHOW_LOG"):
            print(srv.log())

    def reload_twice(self, srv):
        time.sleep(0.5)
        self.install(pki().make_cert("rot2-%d" % id(self), serial=2002))
        srv.signal(signal.SIGHUP)
        self.assertTrue(self.wait_serial(srv.port, 2002), srv.log())
        time.sleep(2.5)  # past the drain deadline: the old worker closes its connections
        # A certificate that cannot be loaded fails the reload; the last good one serves.
        with open(self.cert, "w") as f:
            f.write("not a certificate\n")
        srv.signal(signal.SIGHUP)
        time.sleep(1.0)


if __name__ == "__main__":
    harness.main()
