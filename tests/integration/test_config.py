"""test_config.py -- arrpcd's configuration file (--config), its check (arrpcd -t) and its
re-reading on SIGHUP.

The file is read through the option table, so every error names FILE:LINE; the command line
overrides the file; `arrpcd -t` checks what a start would (secret, TLS files, plugin and its init,
addresses) without disturbing a server that runs; a SIGHUP applies what a reload can change and
logs what it cannot. Every server here listens on 127.0.0.1 with an ephemeral port and is stopped
by PID."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import DEMO_PLUGIN, ROOT, Server, main, run_arrpcd
from test_master import alive, children, kill_quietly, new_master, wait_until

EXIT_USAGE = 2
EXIT_TEST_FAILED = 1
FILE_MAX = 1024 * 1024  # ARRPC_OPT_FILE_MAX
LINE_MAX = 8192         # ARRPC_OPT_FILE_LINE_MAX, newline included
OK_TEXT = "arrpcd: configuration ok"
FAILED_TEXT = "arrpcd: configuration test failed"

# (line 3 of a file, what the error says after "FILE:3: "): one row per kind of error.
BAD_LINES = [
    ("bogus = 1", "unknown option 'bogus'"),
    ("max-depth = 10001", "--max-depth wants a number from 1 to 10000, not '10001'"),
    ("workers = many", "--workers wants a number from 0 to 128, not 'many'"),
    ("listen = nowhere", "--listen wants HOST:PORT, not 'nowhere'"),
    ("debug = maybe", "--debug is a flag: write 'debug', 'debug = true' or 'debug = false'"),
    ("handler-arg =", "--handler-arg wants a value"),
    ("workers", "--workers wants a value"),
    ("config = other.conf", "--config belongs on the command line, not in a file"),
    ("test-config", "--test-config belongs on the command line, not in a file"),
    ("help", "--help belongs on the command line, not in a file"),
    ("x" * LINE_MAX, "line longer than %d bytes" % LINE_MAX),
]


class ConfigCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="arrpc-config-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, text, name="arrpcd.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def conf(self, *lines, name="arrpcd.conf"):
        """A file that serves the demo plugin on an ephemeral port, then lines."""
        head = ["# arrpcd test configuration", "listen = 127.0.0.1:0",
                "handler = " + DEMO_PLUGIN]
        return self.write("\n".join(head + list(lines)) + "\n", name)

    def start(self, config, *args):
        server = Server(*args, config=config, tls=False).start()
        self.addCleanup(server.stop)
        return server


class FileTest(ConfigCase):
    def test_file_sets_options_and_the_command_line_overrides_them(self):
        path = self.conf("workers = 1", "handler-arg = from the file", "", "   # indented comment",
                         "  debug  ", "debug = false", "max-depth=4")
        plain = self.start(path)
        self.assertEqual(len(children(plain.pid)), 1)
        with plain.connect() as c:
            self.assertEqual(c.call({"init_arg": 1}), "from the file")
            self.assertEqual(c.call({"echo": [[[1]]]}), [[[1]]])  # depth 4 is allowed
        with plain.connect() as c:
            reply = c.call({"echo": [[[[1]]]]})  # depth 5 is not
            self.assertTrue(reply.startswith(harness.RPC_PREFIX), reply)
        self.assertNotIn("request", plain.log())  # debug = false came last
        over = self.start(path, "--handler-arg", "from the command line", "--max-depth", "8",
                          "--workers", "2")
        self.assertEqual(len(children(over.pid)), 2)
        with over.connect() as c:
            self.assertEqual(c.call({"init_arg": 1}), "from the command line")
            self.assertEqual(c.call({"echo": [[[[[1]]]]]}), [[[[[1]]]]])

    def test_values_keep_equals_signs_and_hashes_and_crlf_files_read(self):
        path = self.write("listen = 127.0.0.1:0\r\nhandler = %s\r\n"
                          "handler-arg =  a=b # not a comment \r\nworkers = 1" % DEMO_PLUGIN)
        server = self.start(path)
        with server.connect() as c:
            self.assertEqual(c.call({"init_arg": 1}), "a=b # not a comment")

    def test_every_kind_of_error_names_the_file_and_line(self):
        for line, message in BAD_LINES:
            with self.subTest(line=line[:40]):
                path = self.write("# a comment\n\n%s\n" % line)
                status, _, err = run_arrpcd("--config", path)
                self.assertEqual(status, EXIT_USAGE, err)
                self.assertIn("arrpcd: %s:3: %s" % (path, message), err)
                self.assertNotIn("usage:", err)  # the line says it; no help to scroll past
                status, _, err = run_arrpcd("-t", "--config", path)
                self.assertEqual(status, EXIT_TEST_FAILED, err)
                self.assertIn("%s:3: %s" % (path, message), err)
                self.assertIn(FAILED_TEXT, err)

    def test_every_bad_line_is_reported_not_only_the_first(self):
        path = self.write("bogus = 1\nmax-depth = 0\nhandler = echo\nalso-bogus\n")
        status, _, err = run_arrpcd("--config", path)
        self.assertEqual(status, EXIT_USAGE)
        for where in (":1: unknown option 'bogus'", ":2: --max-depth", ":4: unknown option"):
            self.assertIn(path + where, err)
        self.assertNotIn(path + ":3", err)

    def test_a_line_of_exactly_the_limit_is_read(self):
        value = "x" * (LINE_MAX - len("handler-arg = \n"))
        path = self.conf("handler-arg = " + value)
        status, _, err = run_arrpcd("-t", "--config", path)
        self.assertEqual((status, err.strip()), (0, OK_TEXT))

    def test_too_big_unreadable_and_binary_files_are_refused(self):
        big = self.write(("#" * 99 + "\n") * (FILE_MAX // 100 + 1), "big.conf")
        nul = self.write("handler = echo\n\0\n", "nul.conf")
        missing = os.path.join(self.dir, "missing.conf")
        for path, message in ((big, "larger than %d bytes" % FILE_MAX),
                              (nul, "NUL byte"), (missing, "No such file or directory")):
            with self.subTest(path=os.path.basename(path)):
                status, _, err = run_arrpcd("--config", path)
                self.assertEqual(status, EXIT_USAGE, err)
                self.assertIn("arrpcd: %s: " % path, err)
                self.assertIn(message, err)

    def test_a_file_of_exactly_the_limit_is_read(self):
        body = "handler = echo\n"
        filler = FILE_MAX - len(body)
        comments = ("#" * 99 + "\n") * (filler // 100)
        path = self.write(body + comments + "#" * (filler % 100 - 1) + "\n")
        self.assertEqual(os.path.getsize(path), FILE_MAX)
        status, _, err = run_arrpcd("-t", "--config", path, "--listen", "127.0.0.1:0")
        self.assertEqual((status, err.strip()), (0, OK_TEXT))


class ShippedFilesTest(ConfigCase):
    """contrib/arrpcd.conf parses, and the systemd unit checks it with -t before it sends HUP."""

    def test_the_example_configuration_passes_with_local_files(self):
        secret = self.write("s3cret\n", "secret")
        status, _, err = run_arrpcd("-t", "--config", os.path.join(ROOT, "contrib", "arrpcd.conf"),
                                    "--handler", DEMO_PLUGIN, "--auth-secret-file", secret,
                                    "--pid-file", os.path.join(self.dir, "pid"),
                                    "--listen", "127.0.0.1:0")
        self.assertEqual((status, err.strip()), (0, OK_TEXT))

    def test_the_unit_reloads_only_after_a_check_of_the_same_file(self):
        with open(os.path.join(ROOT, "contrib", "systemd", "arrpcd.service")) as f:
            lines = [line.strip() for line in f if not line.startswith("#")]
        start = [line.split("=", 1)[1].split() for line in lines if line.startswith("ExecStart=")]
        reload = [line.split("=", 1)[1].split() for line in lines
                  if line.startswith("ExecReload=")]
        self.assertEqual(len(start), 1)
        config = start[0][start[0].index("--config") + 1]
        self.assertEqual(len(reload), 2, reload)
        self.assertEqual(reload[0], [start[0][0], "-t", "--config", config])
        self.assertEqual(reload[1], ["/bin/kill", "-HUP", "$MAINPID"])
        with open(os.path.join(ROOT, "contrib", "arrpcd.conf")) as f:
            pid_file = [line.split("=", 1)[1].strip() for line in f
                        if line.startswith("pid-file")]
        self.assertEqual(len(pid_file), 1)
        self.assertIn("RuntimeDirectory=" + os.path.basename(os.path.dirname(pid_file[0])),
                      lines)


class TestConfigTest(ConfigCase):
    """arrpcd -t: exit 0 and "configuration ok", or exit 1 with each reason."""

    def check(self, *args):
        status, out, err = run_arrpcd("-t", *args)
        self.assertEqual(out, "")
        return status, err

    def assert_fails(self, args, *reasons):
        status, err = self.check(*args)
        self.assertEqual(status, EXIT_TEST_FAILED, err)
        for reason in reasons:
            self.assertIn(reason, err)
        self.assertTrue(err.rstrip().endswith(FAILED_TEXT), err)

    def test_a_complete_configuration_is_ok(self):
        pki = harness.pki()
        secret = self.write("s3cret\n", "secret")
        path = self.conf("handler-arg = ok", "auth-secret-file = " + secret,
                         "tls-cert = " + pki.server[0], "tls-key = " + pki.server[1],
                         "tls-client-ca = " + pki.ca[0], "metrics-listen = 127.0.0.1:0",
                         "workers = 2")
        status, err = self.check("--config", path)
        self.assertEqual((status, err.strip()), (0, OK_TEXT))
        status, err = self.check("--listen", "127.0.0.1:0", "--handler", "echo")  # no file
        self.assertEqual((status, err.strip()), (0, OK_TEXT))

    def test_a_key_that_does_not_match_the_certificate_fails(self):
        pki = harness.pki()
        other = pki.make_cert("other")
        path = self.conf("tls-cert = " + pki.server[0], "tls-key = " + other[1])
        self.assert_fails(["--config", path], "does not belong to the certificate")
        self.assert_fails(["--config", path, "--tls-cert", "/nonexistent.pem"],
                          "/nonexistent.pem")

    def test_a_start_with_a_key_of_another_certificate_fails(self):
        pki = harness.pki()
        other = pki.make_cert("another")
        path = self.conf("tls-cert = " + pki.server[0], "tls-key = " + other[1], "workers = 1")
        status, _, err = run_arrpcd("--config", path, timeout=30)
        self.assertEqual(status, 1, err)
        self.assertIn("does not belong to the certificate", err)

    def test_a_missing_secret_file_fails(self):
        path = self.conf("auth-secret-file = " + os.path.join(self.dir, "no-secret"))
        self.assert_fails(["--config", path], "--auth-secret-file", "no-secret")

    def test_a_plugin_whose_init_fails_fails(self):
        path = self.conf("handler-arg = fail:7")
        self.assert_fails(["--config", path], "arrpc_handler_init returned 7")
        self.assert_fails(["--config", path, "--handler", os.path.join(self.dir, "none.so")],
                          "none.so")

    def test_an_address_in_use_by_another_program_fails(self):
        other = socket.socket()
        self.addCleanup(other.close)
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        path = self.conf("pid-file = " + os.path.join(self.dir, "arrpcd.pid"))
        self.assert_fails(["--config", path, "--listen", "127.0.0.1:%d" % port],
                          "Address already in use")
        self.assert_fails(["--config", path, "--metrics-listen", "127.0.0.1:%d" % port,
                           "--workers", "1"], "--metrics-listen", "Address already in use")
        # Sockets passed by systemd: --listen is not arrpcd's to bind, so not checked.
        env_status = run_with_env({"LISTEN_FDS": "1"}, "-t", "--config", path, "--listen",
                                  "127.0.0.1:%d" % port)
        self.assertEqual(env_status[0], 0, env_status[1])

    def test_the_running_arrpcd_of_the_pid_file_is_accepted_and_not_disturbed(self):
        pid_file = os.path.join(self.dir, "arrpcd.pid")
        path = self.conf("pid-file = " + pid_file, "workers = 2")
        server = self.start(path)
        workers = children(server.pid)
        listen = "127.0.0.1:%d" % server.port
        status, err = self.check("--config", path, "--listen", listen)
        self.assertEqual(status, 0, err)
        self.assertIn("is in use by the running arrpcd (pid %d, %s)" % (server.pid, pid_file), err)
        self.assertIn(OK_TEXT, err)
        # Without the pid file the same address is another program's, as far as -t can tell.
        self.assert_fails(["--listen", listen, "--handler", "echo"], "Address already in use",
                          "--pid-file")
        self.assertEqual(children(server.pid), workers)
        self.assertNotIn("reload", server.log())
        with server.connect() as c:
            self.assertEqual(c.call({"echo": 1}), 1)

    def test_the_arrpcd_of_a_binary_upgrade_is_recognised_too(self):
        """After SIGUSR2 the pid file names the new master, and -t knows it for arrpcd by its
        executable (a master exec'd as /proc/self/exe has the name "exe")."""
        pid_file = os.path.join(self.dir, "arrpcd.pid")
        path = self.conf("pid-file = " + pid_file, "workers = 1")
        server = self.start(path)
        os.kill(server.pid, signal.SIGUSR2)
        pid = new_master(pid_file, server.pid)
        self.assertTrue(pid, server.log())
        self.addCleanup(kill_quietly, pid)
        status, err = self.check("--config", path, "--listen", "127.0.0.1:%d" % server.port)
        self.assertEqual(status, 0, err)
        self.assertIn("in use by the running arrpcd (pid %d, " % pid, err)
        os.kill(pid, signal.SIGTERM)
        self.assertTrue(wait_until(lambda: not alive(pid)), server.log())


def run_with_env(env, *args):
    """run_arrpcd with variables added to its environment: (status, stderr)."""
    proc = subprocess.run([harness.ARRPCD] + list(args), capture_output=True, text=True,
                          timeout=harness.STOP_TIMEOUT, env=dict(os.environ, **env))
    return proc.returncode, proc.stderr


class ReloadTest(ConfigCase):
    def hup_and_wait(self, server, text, count=1):
        before = server.log().count(text)
        server.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: server.log().count(text) >= before + count),
                        server.log()[-3000:])

    def test_hup_applies_what_it_can_and_logs_what_takes_a_restart(self):
        path = self.conf("handler-arg = one", "workers = 2")
        server = self.start(path)
        self.assertEqual(len(children(server.pid)), 2)
        with server.connect() as old:
            self.assertEqual(old.call({"init_arg": 1}), "one")
            self.conf("handler-arg = two", "workers = 3", "listen = 127.0.0.2:0")
            self.hup_and_wait(server, "reload: generation")
            with server.connect() as fresh:
                self.assertEqual(fresh.call({"init_arg": 1}), "two")
            self.assertEqual(old.call({"init_arg": 1}), "two")  # handed over, not closed
        self.assertTrue(wait_until(lambda: len(children(server.pid)) == 3),
                        (children(server.pid), server.log()[-3000:]))
        self.assertIn("--listen changed to '127.0.0.2:0': that takes a restart; keeping "
                      "'127.0.0.1:0'", server.log())
        with server.connect() as c:  # still where it started
            self.assertEqual(c.call({"echo": 3}), 3)
        self.conf("handler-arg = three", "workers = 1")
        self.hup_and_wait(server, "reload: generation")
        self.assertTrue(wait_until(lambda: len(children(server.pid)) == 1),
                        (children(server.pid), server.log()[-3000:]))
        with server.connect() as c:
            self.assertEqual(c.call({"init_arg": 1}), "three")

    def test_a_file_with_errors_on_hup_keeps_the_serving_generation(self):
        path = self.conf("handler-arg = one", "workers = 1")
        server = self.start(path)
        workers = children(server.pid)
        self.conf("handler-arg = two", "workers = 2", "max-depth = 10001")
        self.hup_and_wait(server, "reload aborted")
        log = server.log()
        self.assertIn("%s:6: --max-depth wants a number" % path, log)
        self.assertIn("reload: %s has errors (above): nothing changed" % path, log)
        self.assertEqual(children(server.pid), workers)
        with server.connect() as c:
            self.assertEqual(c.call({"init_arg": 1}), "one")
        # Fixed, the next HUP applies it.
        self.conf("handler-arg = two", "workers = 1")
        self.hup_and_wait(server, "reload: generation")
        with server.connect() as c:
            self.assertEqual(c.call({"init_arg": 1}), "two")

    def test_turning_tls_on_by_hup_takes_a_restart(self):
        pki = harness.pki()
        path = self.conf("handler-arg = one", "workers = 1")
        server = self.start(path)
        self.conf("handler-arg = two", "workers = 1", "tls-cert = " + pki.server[0],
                  "tls-key = " + pki.server[1])
        self.hup_and_wait(server, "reload: generation")
        self.assertIn("turning TLS on takes a restart", server.log())
        with server.connect() as c:  # plain TCP still, with the rest applied
            self.assertEqual(c.call({"init_arg": 1}), "two")

    def test_the_command_line_still_overrides_the_file_on_hup(self):
        path = self.conf("handler-arg = one", "workers = 1")
        server = self.start(path, "--handler-arg", "pinned")
        self.conf("handler-arg = two", "workers = 1")
        self.hup_and_wait(server, "reload: generation")
        with server.connect() as c:
            self.assertEqual(c.call({"init_arg": 1}), "pinned")


if __name__ == "__main__":
    main()
