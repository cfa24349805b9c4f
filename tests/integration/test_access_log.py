"""test_access_log.py -- arrpcd --access-log: one line per request, answered or not, in JSON or
logfmt; every line parses (with Python's json, with jq when installed, with a strict logfmt
reader), whatever hostile clients send; whole lines only with several workers and handler
threads, to a file and to a pipe; SIGUSR1 after a rename starts a new file and leaves the old
one complete."""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import msgpack

import harness
from harness import AUTH_ERROR, RPC_PREFIX, Server
from test_hostile import BAD_STREAMS, HOSTILE_SIGNED_DATA, refused_envelopes

TRANSPORTS = ("tcp", "tls")  # ctest runs this file over both (harness.py)
SECRET = "access-log-secret"
LIMIT = 4096         # --max-message of the servers here
WAIT_S = 10.0        # bound for lines to appear, workers to reopen
JQ_TIMEOUT_S = 30.0
FIELDS = {"time", "peer", "handler", "bytes_in", "bytes_out", "duration_us", "outcome", "signed",
          "tls", "pid"}
HANDLER = "arrpc_handler"  # the demo plugin's symbol: what metrics call handler_func
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LOGFMT_PAIR = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "=]*)( |$)')


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def wait_until(predicate, timeout=WAIT_S, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


# -- reading lines -----------------------------------------------------------------------------

def parse_logfmt(line):
    """A logfmt line as a dict, values typed as the JSON format types them. Raises ValueError
    unless the whole line is key=value pairs, each key once."""
    fields, at = {}, 0
    while at < len(line):
        m = LOGFMT_PAIR.match(line, at)
        if not m:
            raise ValueError("not logfmt at %d: %r" % (at, line))
        key, raw = m.group(1), m.group(2)
        if key in fields:
            raise ValueError("key %s twice: %r" % (key, line))
        value = json.loads(raw) if raw.startswith('"') else raw
        if key in ("bytes_in", "bytes_out", "duration_us", "pid"):
            value = int(value)
        elif key in ("signed", "tls"):
            value = {"true": True, "false": False}[value]
        fields[key] = value
        at = m.end()
    return fields


def read_lines(path):
    """The file's lines (it must end with a newline when not empty), as text."""
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise AssertionError("the log ends inside a line: %r" % data[-200:])
    return data.decode("utf-8").splitlines()  # strict: a line that is not UTF-8 fails here


def parse_lines(lines, fmt):
    return [json.loads(l) if fmt == "json" else parse_logfmt(l) for l in lines]


def jq_check(test, path):
    """jq reads every line of a JSON log as one object (skipped without jq)."""
    jq = shutil.which("jq")
    if not jq:
        return
    with open(path, "rb") as f:
        out = subprocess.run([jq, "-c", "."], stdin=f, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=JQ_TIMEOUT_S)
    test.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
    test.assertEqual(len(out.stdout.splitlines()), len(read_lines(path)))


class LogCase(unittest.TestCase):
    FORMAT = "json"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="arrpc-access-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "access.log")

    def start(self, *args, **kw):
        server = Server("--access-log", kw.pop("log", self.path), "--access-log-format",
                        self.FORMAT, "--max-message", str(LIMIT), *args, **kw).start()
        self.addCleanup(server.stop)
        return server

    def entries(self, count, path=None):
        """The log's lines, parsed, once there are at least count of them."""
        path = path or self.path
        lines = wait_until(lambda: os.path.exists(path) and len(read_lines(path)) >= count and
                           read_lines(path))
        self.assertTrue(lines, "fewer than %d lines in %s" % (count, path))
        if self.FORMAT == "json":
            jq_check(self, path)
        return parse_lines(lines, self.FORMAT)

    def assert_entry(self, e, peer, outcome, bytes_in, bytes_out, signed, server_pid):
        self.assertEqual(set(e), FIELDS, e)
        self.assertRegex(e["time"], TIME_RE)
        when = datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        self.assertLess(abs((datetime.datetime.utcnow() - when).total_seconds()), 3600)
        self.assertEqual(e["peer"], peer)
        self.assertEqual(e["handler"], HANDLER)
        self.assertEqual((e["outcome"], e["bytes_in"], e["signed"]), (outcome, bytes_in, signed))
        if bytes_out is not None:
            self.assertEqual(e["bytes_out"], bytes_out)
        self.assertEqual(e["tls"], harness.TRANSPORT == "tls")
        self.assertIsInstance(e["duration_us"], int)
        self.assertIn(e["pid"], worker_pids(server_pid), "not a worker's pid")


def peer_of(conn):
    """How the server names this client: its address and port."""
    return "127.0.0.1:%d" % conn.sock.getsockname()[1]


def worker_pids(master_pid):
    try:
        with open("/proc/%d/task/%d/children" % (master_pid, master_pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


# -- what each kind of request logs ------------------------------------------------------------

class OutcomesJson(LogCase):
    FORMAT = "json"
    ARGS = ("--workers", "1")

    def test_each_outcome_logged_with_its_fields(self):
        server = self.start(*self.ARGS, secret=SECRET)
        plain = server.connect()  # unsigned requests: refused before the handler
        signed = server.connect(secret=SECRET)
        self.addCleanup(plain.close)
        self.addCleanup(signed.close)
        want = []  # (peer, outcome, bytes in, bytes out or None, signed)

        def exchange(conn, raw, outcome, is_signed, expect=None):
            conn.send_raw(raw)
            reply, reply_raw = conn.recv_raw()
            if expect is not None:
                self.assertEqual(reply, expect)
            want.append((peer_of(conn), outcome, len(raw), len(reply_raw), is_signed))

        exchange(signed, signed.pack({"echo": [1, "two"]}), "ok", True, [1, "two"])
        exchange(signed, signed.pack({"fail": "nope"}), "rpc", True, RPC_PREFIX + "nope")
        exchange(plain, packb({"echo": 1}), "auth", False, AUTH_ERROR)
        exchange(plain, harness.sign(SECRET, b"\xc1"), "invalid_message", False)
        exchange(signed, signed.pack({"repeat": ["x", 2 * LIMIT]}), "invalid_reply", True)
        for data, reason in BAD_STREAMS:  # no request can be read: one line, then closed
            with server.connect() as c:
                peer = peer_of(c)
                c.send_raw(data)
                replies, closed = c.replies_until_close(timeout=WAIT_S)
                self.assertEqual(len(replies), 1)
                self.assertTrue(closed)
                want.append((peer, reason, None, None, False))
        entries = self.entries(len(want))
        self.assertEqual(len(entries), len(want), entries)
        for e, (peer, outcome, bytes_in, bytes_out, is_signed) in zip(entries, want):
            with self.subTest(outcome=outcome):
                if bytes_in is None:  # what the scanner read before it gave up
                    self.assertGreater(e["bytes_in"], 0)
                    bytes_in = e["bytes_in"]
                self.assert_entry(e, peer, outcome, bytes_in, bytes_out, is_signed, server.pid)


class OutcomesLogfmt(OutcomesJson):
    FORMAT = "logfmt"


class OutcomesOnThreads(OutcomesJson):
    """Calls run on handler threads: the loop still logs them, signed or not."""
    ARGS = ("--workers", "1", "--threads", "2")


# -- hostile input, many workers and threads -----------------------------------------------------

class HostileJson(LogCase):
    FORMAT = "json"
    JUNK_CONNECTIONS = 20

    def test_hostile_input_still_gives_lines_that_parse(self):
        # A request timeout, so that junk that leaves a request unfinished is answered and closed
        # (its line says "timeout").
        server = self.start("--workers", "2", "--request-timeout", "1", secret=SECRET)
        streams = [d for d, _ in BAD_STREAMS]
        streams += [os.urandom(64 + 97 * i) + b"\xc1" for i in range(self.JUNK_CONNECTIONS)]
        streams.append(b"\xc6\x7f\xff\xff\xff" + os.urandom(3 * LIMIT))  # huge: over the limit
        conns = [server.connect() for _ in streams]
        for c, data in zip(conns, streams):
            try:
                c.send_raw(data)
            except OSError:
                pass  # the server refused the stream before it was all sent
        for c in conns:  # at least one line each: the error, or the timeout
            try:
                c.replies_until_close(timeout=WAIT_S, limit=10 ** 6)
            except OSError:
                pass
            c.close()
        sent = 0
        with server.connect() as c:  # bad signatures and hostile signed data, one connection
            for raw in refused_envelopes(SECRET) + [harness.sign(SECRET, d)
                                                    for d in HOSTILE_SIGNED_DATA]:
                c.send_raw(raw)
                self.assertIsInstance(c.recv(), str)
                sent += 1
        entries = self.entries(sent + len(streams))
        self.assertGreaterEqual(len(entries), sent + len(streams))
        outcomes = {e["outcome"] for e in entries}
        self.assertLessEqual(outcomes, {"ok", "auth", "invalid_message", "too_large", "too_deep",
                                        "rpc", "timeout"}, outcomes)
        for e in entries:
            self.assertEqual(set(e), FIELDS)


class HostileLogfmt(HostileJson):
    FORMAT = "logfmt"


class ConcurrentJson(LogCase):
    FORMAT = "json"
    CLIENTS = 8
    CALLS = 150   # per client, pipelined in batches
    BATCH = 10

    def hammer(self, server):
        """CLIENTS connections, each CALLS requests of varied sizes in pipelined batches; returns
        the requests answered."""
        done, errors = [], []

        def client(k):
            try:
                with server.connect() as c:
                    for start in range(0, self.CALLS, self.BATCH):
                        batch = [{"echo": "%d-%d-%s" % (k, i, "y" * (i * 7 % 300))}
                                 for i in range(start, start + self.BATCH)]
                        c.send_raw(b"".join(c.pack(b) for b in batch))
                        for b in batch:
                            if c.recv() != b["echo"]:
                                errors.append(b)
                    done.append(self.CALLS)
            except Exception as e:  # reported below, not lost in the thread
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(self.CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(errors, [])
        return sum(done)

    def check_whole(self, lines, total, server):
        entries = parse_lines(lines, self.FORMAT)
        self.assertEqual(len(entries), total)
        self.assertEqual({e["outcome"] for e in entries}, {"ok"})
        self.assertLessEqual({e["pid"] for e in entries}, set(worker_pids(server.pid)))

    def test_workers_and_threads_write_only_whole_lines_to_a_file(self):
        server = self.start("--workers", "2", "--threads", "4")
        total = self.hammer(server)
        wait_until(lambda: len(read_lines(self.path)) >= total)
        self.check_whole(read_lines(self.path), total, server)
        if self.FORMAT == "json":
            jq_check(self, self.path)

    def test_workers_and_threads_write_only_whole_lines_to_a_pipe(self):
        """"-": the workers' standard output, here one pipe shared by both."""
        got = []
        rfd, wfd = os.pipe()
        server = self.start("--workers", "2", "--threads", "4", log="-", stdout=wfd)
        os.close(wfd)
        pids = set(worker_pids(server.pid))

        def read_all():
            for chunk in iter(lambda: os.read(rfd, 1 << 20), b""):
                got.append(chunk)

        reader = threading.Thread(target=read_all)
        reader.start()
        total = self.hammer(server)
        wait_until(lambda: b"".join(got).count(b"\n") >= total)
        server.stop()  # the workers were the pipe's last writers: the reader sees its end
        reader.join(timeout=WAIT_S)
        os.close(rfd)
        data = b"".join(got)
        self.assertTrue(data.endswith(b"\n"))
        entries = parse_lines(data.decode("utf-8").splitlines(), self.FORMAT)
        self.assertEqual(len(entries), total)
        self.assertLessEqual({e["pid"] for e in entries}, pids)


class ConcurrentLogfmt(ConcurrentJson):
    FORMAT = "logfmt"


# -- rotation ------------------------------------------------------------------------------------

class RotationTest(LogCase):
    MAX_TRIES = 200  # connections tried until both workers have written to the new file

    def call_pid(self, server):
        with server.connect() as c:
            return c.call({"pid": 0})

    def new_file_pids(self):
        if not os.path.exists(self.path):
            return set()
        return {e["pid"] for e in parse_lines(read_lines(self.path), self.FORMAT)}

    def test_usr1_after_a_rename_starts_a_new_file_and_the_old_one_is_complete(self):
        server = self.start("--workers", "2")
        before = 30
        for _ in range(before):
            self.call_pid(server)
        wait_until(lambda: len(read_lines(self.path)) >= before)
        os.rename(self.path, self.path + ".1")
        server.signal(signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: "reopening the access log" in server.log()))
        workers = set(worker_pids(server.pid))
        after = 0
        while self.new_file_pids() != workers and after < self.MAX_TRIES:
            self.call_pid(server)  # lands on either worker (SO_REUSEPORT hashes the port)
            after += 1
            time.sleep(0.01)
        self.assertEqual(self.new_file_pids(), workers, "a worker did not reopen")
        wait_until(lambda: len(read_lines(self.path + ".1")) + len(read_lines(self.path))
                   >= before + after)
        old_entries = parse_lines(read_lines(self.path + ".1"), self.FORMAT)
        new_entries = parse_lines(read_lines(self.path), self.FORMAT)
        self.assertEqual(len(old_entries) + len(new_entries), before + after)
        # Lines of requests answered before the signal are all in the old file, whole.
        self.assertGreaterEqual(len(old_entries), before)

    def test_usr1_without_workers_reopens_in_process(self):
        server = self.start("--workers", "0")
        self.call_pid(server)
        self.assertEqual(len(self.entries(1)), 1)
        os.rename(self.path, self.path + ".1")
        server.signal(signal.SIGUSR1)
        self.assertTrue(wait_until(lambda: os.path.exists(self.path)), "not reopened")
        self.call_pid(server)
        self.assertEqual(len(self.entries(1)), 1)
        self.assertEqual(len(read_lines(self.path + ".1")), 1)


# -- options -------------------------------------------------------------------------------------

class OptionsTest(unittest.TestCase):
    def test_bad_format_refused(self):
        status, _, err = harness.run_arrpcd("--handler", "echo", "--access-log", "-",
                                            "--access-log-format", "xml")
        self.assertEqual(status, 2)
        self.assertIn("--access-log-format wants json or logfmt, not 'xml'", err)

    def test_unopenable_path_fails_the_start_with_the_reason(self):
        for workers in ("0", "1"):
            with self.subTest(workers=workers):
                status, _, err = harness.run_arrpcd(
                    "--listen", "127.0.0.1:0", "--handler", "echo", "--workers", workers,
                    "--access-log", "/nonexistent-dir/access.log")
                self.assertEqual(status, 1, err)
                self.assertIn("cannot open the access log /nonexistent-dir/access.log: "
                              "No such file or directory", err)

    def test_help_names_the_options(self):
        status, out, _ = harness.run_arrpcd("--help")
        self.assertEqual(status, 0)
        self.assertIn("--access-log F", out)
        self.assertIn("--access-log-format json|logfmt", out)


if __name__ == "__main__":
    harness.main()
