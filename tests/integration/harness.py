"""harness.py -- start the real arrpcd on an ephemeral 127.0.0.1 port, talk to it as arrpc 0.5.0's
Python client does, and stop everything by PID.

Run with /usr/bin/python3 (Debian's python3-msgpack). ctest sets ARRPC_BIN_DIR and ARRPC_LIB_DIR;
by hand, they default to build/bin and build/lib next to this checkout.

Transports: one table of cases, two transports. ARRPC_TRANSPORT=tls (ctest registers a second run,
integration_<file>_tls, of every file that declares TRANSPORTS = ("tcp", "tls")) makes Server
serve TLS with certificates made by the openssl CLI in a temporary directory (Pki), and makes
Conn, Server.connect and Server.client_args speak TLS to it; the cases themselves do not change.
"""
import atexit
import hashlib
import hmac
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import msgpack

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.environ.get("ARRPC_BIN_DIR", os.path.join(ROOT, "build", "bin"))
LIB_DIR = os.environ.get("ARRPC_LIB_DIR", os.path.join(ROOT, "build", "lib"))
ARRPCD = os.path.join(BIN_DIR, "arrpcd")
DEMO_PLUGIN = os.path.join(LIB_DIR, "arrpc-demo.so")

AUTH_ERROR = ("arrpc.error.AuthException: Invalid or missing message signature, "
              "make sure 'auth_secret' is set/correct")
RPC_PREFIX = "arrpc.error.RpcException: "

START_TIMEOUT = 10.0  # seconds for arrpcd to print its listening line
STOP_TIMEOUT = 10.0   # seconds for a graceful stop before SIGKILL
IO_TIMEOUT = 30.0     # seconds any single socket operation may take
TRANSPORT = os.environ.get("ARRPC_TRANSPORT", "tcp")  # "tcp" or "tls": see the docstring
OPENSSL_TIMEOUT = 30.0


def openssl(*args, cwd=None):
    """Runs the openssl CLI; raises with its output when it fails."""
    proc = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=OPENSSL_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), proc.stdout.decode()))
    return proc.stdout.decode(errors="replace")


class Pki:
    """A throwaway CA and certificates (P-256 keys) in a temporary directory, removed at exit.
    Never committed: every run makes its own."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="arrpc-pki-")
        atexit.register(shutil.rmtree, self.dir, True)
        self.ca = self.make_ca("ca")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.path(name + ".key"))
        return self.path(name + ".key")

    def make_ca(self, name):
        """A self-signed CA: (cert path, key path)."""
        key = self._key(name)
        openssl("req", "-x509", "-new", "-key", key, "-out", self.path(name + ".crt"),
                "-days", "30", "-subj", "/CN=arrpc test " + name)
        return self.path(name + ".crt"), key

    def make_cert(self, name, ca=None, names=("localhost", "127.0.0.1"), client=False,
                  expired=False, serial=None):
        """A certificate signed by ca (default: the main CA) for the given DNS names and IP
        addresses: (cert path, key path). expired: valid for a day, a year ago."""
        ca_cert, ca_key = ca or self.ca
        key = self._key(name)
        csr = self.path(name + ".csr")
        openssl("req", "-new", "-key", key, "-out", csr, "-subj", "/CN=" + name)
        ext = self.path(name + ".ext")
        alt = ",".join(("IP:" if re.match(r"^[0-9.]+$|:", n) else "DNS:") + n for n in names)
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
            if names:
                f.write("subjectAltName=%s\n" % alt)
        cert = self.path(name + ".crt")
        serial_args = ["-set_serial", str(serial)] if serial else ["-set_serial",
                                                                     str(int.from_bytes(os.urandom(8), "big"))]
        if expired:  # OpenSSL 3.0's x509 has no -not_after: `openssl ca` takes explicit dates
            self._sign_with_dates(csr, cert, ext, ca_cert, ca_key, serial_args[1])
        else:
            openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-out", cert,
                    "-days", "30", "-extfile", ext, *serial_args)
        return cert, key

    def _sign_with_dates(self, csr, cert, ext, ca_cert, ca_key, serial):
        db = self.path("ca-db")
        os.makedirs(db, exist_ok=True)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "serial"), "w") as f:
            digits = "%x" % max(int(serial), 16)
            # openssl ca reads the serial file as whole bytes: an even number of hex digits
            f.write(("0" if len(digits) % 2 else "") + digits + "\n")
        conf = os.path.join(db, "ca.cnf")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\nserial=%s/serial\n"
                    "new_certs_dir=%s\ndefault_md=sha256\npolicy=p\nunique_subject=no\n"
                    "[p]\ncommonName=supplied\n" % (db, db, db))
        openssl("ca", "-batch", "-config", conf, "-cert", ca_cert, "-keyfile", ca_key,
                "-in", csr, "-out", cert, "-startdate", "20000101000000Z",
                "-enddate", "20000102000000Z", "-extfile", ext, "-notext")

    def serial(self, cert):
        """The serial number of a certificate file, as an int."""
        out = openssl("x509", "-in", cert, "-noout", "-serial")
        return int(out.strip().split("=", 1)[1], 16)


_pki = None


def pki():
    """The process's Pki, made on first use."""
    global _pki
    if _pki is None:
        _pki = Pki()
        _pki.server = _pki.make_cert("server")
    return _pki


class Tls:
    """What a TLS server is started with, and how a client of it is configured."""

    def __init__(self, cert=None, key=None, client_ca=None, cafile=None, server_name="localhost",
                 client_cert=None):
        p = pki()
        self.cert, self.key = (cert, key) if cert else p.server
        self.client_ca = client_ca
        self.cafile = cafile or p.ca[0]
        self.server_name = server_name
        self.client_cert = client_cert  # (cert, key) our clients present; None: none

    def server_args(self):
        args = ["--tls-cert", self.cert, "--tls-key", self.key]
        return args + (["--tls-client-ca", self.client_ca] if self.client_ca else [])

    def client_args(self):
        """arrpc-call and client_driver options for a client of this server."""
        args = ["--tls-cafile", self.cafile, "--tls-server-name", self.server_name]
        if self.client_cert:
            args += ["--tls-cert", self.client_cert[0], "--tls-key", self.client_cert[1]]
        return args

    def context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.cafile)
        if self.client_cert:
            ctx.load_cert_chain(*self.client_cert)
        return ctx

    def wrap(self, sock):
        return self.context().wrap_socket(sock, server_hostname=self.server_name)


class Server:
    """arrpcd as a child process. Use as a context manager; it is always stopped by PID."""

    def __init__(self, *args, handler=None, secret=None, tls=None, env=None, binary=ARRPCD,
                 config=None, stdout=subprocess.DEVNULL, listen="127.0.0.1:0"):
        """tls: a Tls, True for the default one, False for plain TCP; None follows
        ARRPC_TRANSPORT. env: variables added to arrpcd's environment. binary: the arrpcd
        to run (a copy, for tests that replace it on disk). config: a configuration file that
        names the address and the handler: then only args follow --config. stdout: where
        arrpcd's standard output goes (a file object, a descriptor or subprocess.PIPE; default
        nowhere). listen: arrpcd's --listen, e.g. "127.0.0.3:0" where a test needs several
        hosts, or a fixed port to restart a server where it was."""
        self.listen = listen
        self.args = list(args)
        self.binary = binary
        self.config = config
        self.env = dict(os.environ, **(env or {}))
        if tls is None:
            tls = TRANSPORT == "tls"
        self.tls = Tls() if tls is True else (tls or None)
        self.handler = handler or DEMO_PLUGIN
        self.stdout = stdout
        self.secret = secret
        self.proc = None
        self.port = None
        self.stderr_path = None
        self._secret_file = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if self.config:
            cmd = [self.binary, "--config", self.config] + self.args
        else:
            cmd = [self.binary, "--listen", self.listen, "--handler", self.handler] + self.args
        if self.tls:
            cmd += self.tls.server_args()
        if self.secret is not None:
            self._secret_file = tempfile.NamedTemporaryFile("wb", delete=False)
            self._secret_file.write(self.secret if isinstance(self.secret, bytes)
                                    else self.secret.encode())
            self._secret_file.close()
            cmd += ["--auth-secret-file", self._secret_file.name]
        log = tempfile.NamedTemporaryFile("w+b", delete=False, prefix="arrpcd-", suffix=".log")
        self.stderr_path = log.name
        atexit.register(_unlink_quietly, log.name)  # kept until exit: tests read logs after stop
        self.proc = subprocess.Popen(cmd, stdout=self.stdout, stderr=log, env=self.env)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"listening on [^ ]*:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("arrpcd exited with %s:\n%s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("arrpcd did not start:\n" + self.log())

    def log(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit status."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._secret_file:
            os.unlink(self._secret_file.name)
            self._secret_file = None
        return self.proc.returncode if self.proc else None

    @property
    def pid(self):
        return self.proc.pid

    def current_syscall(self):
        """The number of the system call arrpcd's main thread is in now (from /proc/PID/syscall),
        "running" when it is on a CPU, or None when that cannot be read."""
        try:
            with open("/proc/%d/syscall" % self.proc.pid) as f:
                first = f.read().split()
        except OSError:
            return None
        if not first:
            return None
        return "running" if first[0] == "running" else int(first[0])

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def connect(self, secret=None, **options):
        options.setdefault("tls", self.tls)
        return Conn(self.port, secret=secret, **options)

    def client_args(self):
        """Options that make arrpc-call or client_driver a client of this server (TLS or not)."""
        return self.tls.client_args() if self.tls else []


def client_args():
    """Options that make arrpc-call or client_driver a client of a default Server() of this run
    (TLS ones when ARRPC_TRANSPORT=tls)."""
    return Tls().client_args() if TRANSPORT == "tls" else []


def run_arrpcd(*args, timeout=STOP_TIMEOUT):
    """Runs arrpcd with exactly these arguments (for option and start-up checks that end on
    their own); returns (exit status, stdout text, stderr text). Killed after timeout."""
    proc = subprocess.Popen([ARRPCD] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def sign(secret, data):
    """The 0.5.0 envelope: {"arrpc.sign": hex HMAC-SHA256(secret, data), "data": data}."""
    key = secret if isinstance(secret, bytes) else secret.encode()
    sig = hmac.new(key, data, hashlib.sha256).hexdigest()
    return msgpack.packb({"arrpc.sign": sig, "data": data}, use_bin_type=True)


class Conn:
    """One connection that packs and unpacks exactly as arrpc 0.5.0's client does."""

    def __init__(self, port, secret=None, timeout=IO_TIMEOUT, strict_map_key=True, nodelay=False,
                 tls=None, preamble=b"", source=None):
        """preamble: bytes sent on the socket before anything else, TLS included (a PROXY
        protocol header). source: the local address to bind before connecting (another
        loopback host, 127.0.0.2-127.0.0.9); None lets the kernel pick."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if preamble:
            self.sock.sendall(preamble)
        if tls:
            self.sock = tls.wrap(self.sock)
        self.secret = secret
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30,
                                         strict_map_key=strict_map_key)
        self._raw = bytearray()  # bytes fed to the unpacker, from stream offset _raw_base on
        self._raw_base = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def pack(self, obj):
        data = msgpack.packb(obj, use_bin_type=True)
        return sign(self.secret, data) if self.secret is not None else data

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.sock.sendall(self.pack(obj))

    def recv(self):
        """The next whole reply; raises EOFError when the server closed first."""
        return self.recv_raw()[0]

    def recv_raw(self):
        """The next whole reply and the exact bytes it came as: (object, bytes)."""
        while True:
            for obj in self.unpacker:
                end = self.unpacker.tell() - self._raw_base
                raw = bytes(self._raw[:end])
                del self._raw[:end]
                self._raw_base += end
                return obj, raw
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("server closed the connection")
            self.unpacker.feed(data)
            self._raw += data

    def replies_until_close(self, timeout=5.0, limit=100):
        """Every reply until the server closes the connection: (replies, closed). closed is
        False when the connection stayed open for timeout seconds or more than limit replies
        came; a reset after the replies counts as closed."""
        replies = []
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        try:
            while len(replies) <= limit and time.monotonic() < deadline:
                replies.append(self.recv())
        except EOFError:
            return replies, True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return replies, True
        except socket.timeout:
            pass
        return replies, False

    def call(self, obj):
        self.send(obj)
        return self.recv()

    def closed_by_server(self, timeout=5.0):
        """True when the server closes the connection within timeout (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False


def main():
    unittest.main(verbosity=2)
