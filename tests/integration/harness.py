"""harness.py -- start the real arrpcd on an ephemeral 127.0.0.1 port, talk to it as arrpc 0.5.0's
Python client does, and stop everything by PID.

Run with /usr/bin/python3 (Debian's python3-msgpack). ctest sets ARRPC_BIN_DIR and ARRPC_LIB_DIR;
by hand, they default to build/bin and build/lib next to this checkout.
"""
import atexit
import hashlib
import hmac
import os
import re
import signal
import socket
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


class Server:
    """arrpcd as a child process. Use as a context manager; it is always stopped by PID."""

    def __init__(self, *args, handler=None, secret=None):
        self.args = list(args)
        self.handler = handler or DEMO_PLUGIN
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
        cmd = [ARRPCD, "--listen", "127.0.0.1:0", "--handler", self.handler] + self.args
        if self.secret is not None:
            self._secret_file = tempfile.NamedTemporaryFile("wb", delete=False)
            self._secret_file.write(self.secret if isinstance(self.secret, bytes)
                                    else self.secret.encode())
            self._secret_file.close()
            cmd += ["--auth-secret-file", self._secret_file.name]
        log = tempfile.NamedTemporaryFile("w+b", delete=False, prefix="arrpcd-", suffix=".log")
        self.stderr_path = log.name
        atexit.register(_unlink_quietly, log.name)  # kept until exit: tests read logs after stop
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
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
        return Conn(self.port, secret=secret, **options)


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

    def __init__(self, port, secret=None, timeout=IO_TIMEOUT, strict_map_key=True, nodelay=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
        except (ConnectionResetError, BrokenPipeError):
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
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def main():
    unittest.main(verbosity=2)
