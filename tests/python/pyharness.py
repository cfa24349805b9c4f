"""pyharness.py -- what the Python package's tests share: arrpc imported from the build
(ARRPC_PYTHON_DIR, set by ctest; build/python by hand), servers run in the background on
ephemeral 127.0.0.1 ports, scripts run as child processes, certificates from the integration
harness (its Pki)."""
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PYTHON_DIR = os.environ.get("ARRPC_PYTHON_DIR", os.path.join(ROOT, "build", "python"))
sys.path.insert(0, PYTHON_DIR)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import arrpc  # noqa: E402  (after the path is set)
import harness  # noqa: E402

SCRIPT_TIMEOUT = 60.0  # seconds a child script may run
START_TIMEOUT = 30.0   # seconds for a child server to say it listens


def serve(handler, **options):
    """An arrpc.Server started in the background on an ephemeral port; stop() it (or use it as a
    context manager)."""
    server = arrpc.Server("127.0.0.1", 0, handler, **options)
    server.start(background=True)
    return server


def client(server, **options):
    return arrpc.Client("127.0.0.1", server.port, **options)


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, **extra)
    return env


class Script:
    """A Python script run as a child process with the package on its path; its output lands in
    a temporary file. Stopped by PID."""

    def __init__(self, source, cwd=None, args=()):
        self.dir = cwd or tempfile.mkdtemp(prefix="arrpc-py-")
        self.path = os.path.join(self.dir, "script_%d.py" % id(self))
        with open(self.path, "w") as f:
            f.write(source)
        self.out = tempfile.NamedTemporaryFile("w+b", delete=False, prefix="arrpc-py-out-")
        self.proc = subprocess.Popen(["/usr/bin/python3", self.path] + list(args), cwd=self.dir,
                                     stdout=self.out, stderr=subprocess.STDOUT, env=child_env())

    def output(self):
        with open(self.out.name, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, text, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return self.output()
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("no %r from the script:\n%s" % (text, self.output()))

    def wait(self, timeout=SCRIPT_TIMEOUT):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise
        return self.proc.returncode

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.send_signal(sig or 15)
            try:
                self.proc.wait(timeout=harness.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.unlink(self.out.name)
        except OSError:
            pass


def run_script(source, cwd=None, timeout=SCRIPT_TIMEOUT):
    """Runs a script to its end: (exit status, output)."""
    script = Script(source, cwd=cwd)
    try:
        status = script.wait(timeout)
        return status, script.output()
    finally:
        script.stop()


def main():
    unittest.main(verbosity=2)
