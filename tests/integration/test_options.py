"""test_options.py -- the option table of each program (tools/options.c): every option its --help
lists takes a value of the form the help names, out-of-range numbers are refused with exit 2 and
a message naming the option, and --help-man renders as a man page."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN_DIR, main  # noqa: E402

RUN_TIMEOUT = 30  # seconds for one run; every run here ends after parsing
EXIT_USAGE = 2
PROGRAMS = ("arrpcd", "arrpc-call", "arrpc-bench", "client_driver")

# A valid value for each value name the help uses.
VALUE_FOR = {
    "N": "1", "S": "1", "MS": "100", "BYTES": "1024", "PID": "1", "P": "8080", "H": "localhost",
    "F": "/dev/null", "HOST:PORT": "127.0.0.1:0", "SPEC": "echo", "HEX": "00", "STRING": "x",
    "arrpc|resp": "resp", "JSON": '{"echo": 1}', "J": "100", "MIB": "64",
    "json|logfmt": "logfmt", "CIDR[,CIDR...]": "127.0.0.0/8,::1",
    "HOST:PORT,...": "127.0.0.1:1,[::1]:2", "DIR": "/tmp",
}

# Options that exit on their own, so that "OPTION VALUE --help" would not show acceptance.
EXITING = {"help", "version"}

# (program, option, bad value, what the message names): bounds just outside the table's.
OUT_OF_RANGE = [
    ("arrpcd", "--max-worker-rss", "1048577", "--max-worker-rss"),
    ("arrpcd", "--max-depth", "10001", "--max-depth"),
    ("arrpcd", "--max-message", "15", "--max-message"),
    ("arrpcd", "--workers", "129", "--workers"),
    ("arrpcd", "--pre-drain", "3601", "--pre-drain"),
    ("arrpcd", "--tcp-keepalive", "32768", "--tcp-keepalive"),
    ("arrpcd", "--tls-handshake-timeout", "0", "--tls-handshake-timeout"),
    ("arrpcd", "--drain-timeout", "86401", "--drain-timeout"),
    ("arrpcd", "--access-log-format", "xml", "--access-log-format"),
    ("arrpcd", "--listen", "127.0.0.1:65536", "--listen"),
    ("arrpc-call", "--port", "65536", "--port"),
    ("arrpc-call", "--retries", "1001", "--retries"),
    ("arrpc-call", "--timeout", "2073601", "--timeout"),
    ("arrpc-call", "--retry-backoff", "-1", "--retry-backoff"),
    ("arrpc-bench", "-c", "100001", "--connections"),
    ("arrpc-bench", "--pipeline", "0", "--pipeline"),
    ("arrpc-bench", "--threads", "257", "--threads"),
    ("arrpc-bench", "-d", "0", "--duration"),
    ("arrpc-bench", "--size", "268435457", "--size"),
    ("arrpc-bench", "--server-pid", "2147483648", "--server-pid"),
    ("arrpc-bench", "--proto", "tcp", "--proto"),
    ("arrpc-bench", "--rate", "10000001", "--rate"),
    ("client_driver", "--port", "65536", "--port"),
]


def run(program, *args):
    proc = subprocess.run([os.path.join(BIN_DIR, program)] + list(args), capture_output=True,
                          text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def help_options(program):
    """[(long name, value name or None)] as the program's --help lists them."""
    status, out, err = run(program, "--help")
    assert status == 0, (program, err)
    found = re.findall(r"^ {2}(?:-\w, | {4})?--([a-z-]+)(?: (\S+))?", out, re.M)
    assert found, out
    return [(name, value or None) for name, value in found]


class HelpOptionsTest(unittest.TestCase):
    def test_every_listed_option_takes_its_value_form(self):
        for program in PROGRAMS:
            for name, value in help_options(program):
                if name in EXITING:
                    continue
                with self.subTest(program=program, option=name):
                    self.assertIn(value, list(VALUE_FOR) + [None], "no sample value")
                    args = ["--" + name] + ([VALUE_FOR[value]] if value else [])
                    # --help after the option: exit 0 with nothing on stderr means the
                    # parser took the value (a bad one is reported before --help is seen).
                    status, out, err = run(program, *args, "--help")
                    self.assertEqual((status, err), (0, ""), args)
                    self.assertIn("usage: " + program, out)

    def test_version(self):
        for program in ("arrpcd", "arrpc-call", "arrpc-bench"):
            with self.subTest(program=program):
                status, out, _ = run(program, "--version")
                self.assertEqual(status, 0)
                self.assertTrue(out.startswith(program + " "), out)

    def test_out_of_range_is_refused_naming_the_option(self):
        for program, option, bad, named in OUT_OF_RANGE:
            with self.subTest(program=program, option=option, value=bad):
                status, _, err = run(program, option, bad)
                self.assertEqual(status, EXIT_USAGE, err)
                self.assertIn("%s: %s" % (program, named) if program != "arrpc-bench"
                              else named, err)
                self.assertIn("'%s'" % bad, err)

    def test_defaults_in_help_are_the_real_ones(self):
        _, out, _ = run("arrpcd", "--help")
        for text in ("(default: 127.0.0.1:8080)", "(default: 16777216)",
                     "(default: 128, at most 10000)", "(default: the number of CPUs)"):
            self.assertIn(text, " ".join(out.split()))
        _, out, _ = run("arrpc-bench", "-c", "7", "--help")  # defaults, not the values given
        self.assertIn("connections (default: 16)", " ".join(out.split()))


@unittest.skipUnless(shutil.which("groff"), "groff is not installed (apt-get install groff): "
                     "the man pages are not checked")
class ManPageTest(unittest.TestCase):
    def test_man_pages_render_without_warnings(self):
        for program in PROGRAMS:
            with self.subTest(program=program):
                status, page, err = run(program, "--help-man")
                self.assertEqual((status, err), (0, ""))
                self.assertTrue(page.startswith(".TH "), page[:80])
                proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww"], input=page,
                                      capture_output=True, text=True, timeout=RUN_TIMEOUT)
                self.assertEqual((proc.returncode, proc.stderr), (0, ""), program)
                text = re.sub(r".\x08", "", proc.stdout)  # overstrike bold and underline
                text = text.replace("\u2010", "-").replace("\u2212", "-")
                for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS"):
                    self.assertIn(section, text)
                for name, _ in help_options(program):
                    self.assertIn("--" + name, text)


if __name__ == "__main__":
    main()
