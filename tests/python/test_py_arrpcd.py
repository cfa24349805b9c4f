"""arrpcd --handler py:MODULE:FUNCTION: serves a Python function from a module found through
--pythonpath, imports it in each worker so that SIGHUP serves edited code, fails the start (or
keeps the old workers on a reload) when the module cannot be imported, with Python's error in the
log, and names the function in the metrics. arrpcd itself does not link libpython."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

import pyharness
from pyharness import arrpc, harness

CHANGE_TIMEOUT = 30.0  # seconds for a reload to show
MODULE = """
import os
from arrpc.error import RpcException
VERSION = %d
def handle(message):
    if message == "rpc":
        raise RpcException("refused")
    if message == "zero":
        return 1 / 0
    return {"version": VERSION, "pid": os.getpid(), "echo": message}
"""


def write_module(directory, version, text=None):
    path = os.path.join(directory, "pyhandler_mod.py")
    with open(path + ".tmp", "w") as f:
        f.write(text if text is not None else MODULE % version)
    os.replace(path + ".tmp", path)  # a worker never imports half a file


class Arrpcd(harness.unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="arrpc-pyhandler-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        write_module(self.dir, 1)

    def server(self, *args):
        return harness.Server("--workers", "2", "--threads", "4", "--pythonpath", self.dir,
                              *args, handler="py:pyhandler_mod:handle", tls=False)

    def test_arrpcd_does_not_link_libpython(self):
        out = subprocess.run(["ldd", harness.ARRPCD], stdout=subprocess.PIPE, check=True).stdout
        self.assertNotIn(b"libpython", out)

    def test_serves_the_function_and_its_errors(self):
        with self.server() as server:
            cli = arrpc.Client("127.0.0.1", server.port)
            reply = cli.send({"a": [1, b"2"]})
            self.assertEqual(reply["echo"], {"a": [1, b"2"]})
            self.assertEqual(reply["version"], 1)
            with self.assertRaises(arrpc.error.RpcException) as caught:
                cli.send("rpc")
            self.assertEqual(str(caught.exception), "refused")
            with self.assertRaises(arrpc.error.RpcException) as caught:
                cli.send("zero")
            self.assertEqual(str(caught.exception), "ZeroDivisionError: division by zero")
            self.assertEqual(cli.send(None)["echo"], None)

    def test_reload_serves_edited_code(self):
        with self.server() as server:
            cli = arrpc.Client("127.0.0.1", server.port)
            self.assertEqual(cli.send("x")["version"], 1)
            write_module(self.dir, 2)
            server.signal(signal.SIGHUP)
            deadline = time.monotonic() + CHANGE_TIMEOUT
            while cli.send("x")["version"] != 2:
                self.assertLess(time.monotonic(), deadline, server.log())
                time.sleep(0.05)

    def test_broken_reload_keeps_the_old_workers(self):
        with self.server() as server:
            cli = arrpc.Client("127.0.0.1", server.port)
            self.assertEqual(cli.send("x")["version"], 1)
            write_module(self.dir, 0, "def handle(:\n")
            server.signal(signal.SIGHUP)
            deadline = time.monotonic() + CHANGE_TIMEOUT
            while "SyntaxError" not in server.log():
                self.assertLess(time.monotonic(), deadline, server.log())
                time.sleep(0.05)
            time.sleep(0.5)
            self.assertEqual(cli.send("still")["version"], 1)

    def test_module_that_cannot_be_imported_fails_the_start(self):
        for spec, error in (("py:no_such_module:handle", "ModuleNotFoundError"),
                            ("py:pyhandler_mod:no_such_function", "AttributeError"),
                            ("py:pyhandler_mod", "py:MODULE:FUNCTION")):
            with self.subTest(spec=spec):
                status, _, err = harness.run_arrpcd(
                    "--listen", "127.0.0.1:0", "--workers", "1", "--pythonpath", self.dir,
                    "--handler", spec, timeout=60)
                self.assertNotEqual(status, 0)
                self.assertIn(error, err)

    def test_config_test_imports_the_module(self):
        """arrpcd -t runs the Python plugin's init, so a module that cannot be imported fails
        the check as it would fail the start, and a good one passes."""
        status, _, err = harness.run_arrpcd("-t", "--listen", "127.0.0.1:0", "--pythonpath",
                                            self.dir, "--handler", "py:pyhandler_mod:handle",
                                            timeout=60)
        self.assertEqual(status, 0, err)
        self.assertIn("configuration ok", err)
        for spec, error in (("py:no_such_module:handle", "ModuleNotFoundError"),
                            ("py:pyhandler_mod", "py:MODULE:FUNCTION")):
            with self.subTest(spec=spec):
                status, _, err = harness.run_arrpcd("-t", "--listen", "127.0.0.1:0",
                                                    "--pythonpath", self.dir, "--handler", spec,
                                                    timeout=60)
                self.assertEqual(status, 1, err)
                self.assertIn(error, err)

    def metrics_text(self, spec):
        port = pyharness_free_port()
        with harness.Server("--workers", "1", "--pythonpath", self.dir, "--metrics-listen",
                            "127.0.0.1:%d" % port, handler=spec, tls=False) as server:
            arrpc.Client("127.0.0.1", server.port).send("x")
            url = "http://127.0.0.1:%d/metrics" % port
            with urllib.request.urlopen(url, timeout=harness.IO_TIMEOUT) as reply:
                return reply.read().decode()

    def test_metrics_name_the_function(self):
        self.assertIn('handler_func="handle"', self.metrics_text("py:pyhandler_mod:handle"))

    def test_metrics_name_what_the_attribute_resolves_to(self):
        """As 0.5.0 labelled handler_func with handler.__name__: an alias is known by the
        function it names, a decorated function by what the decorator returned (here a
        functools.wraps wrapper, so the wrapped function's name), an object without __name__ by
        the attribute."""
        with open(os.path.join(self.dir, "pyhandler_alias.py"), "w") as f:
            f.write(ALIAS_MODULE)
        for attribute, name in (("handle", "other_function"), ("decorated", "inner_name"),
                                ("instance", "instance")):
            with self.subTest(attribute=attribute):
                self.assertIn('handler_func="%s"' % name,
                              self.metrics_text("py:pyhandler_alias:" + attribute))


ALIAS_MODULE = """
import functools

def other_function(message):
    return message

handle = other_function

def logged(fn):
    @functools.wraps(fn)
    def wrapper(message):
        return fn(message)
    return wrapper

@logged
def inner_name(message):
    return message

decorated = inner_name

class Callable:
    def __call__(self, message):
        return message

instance = Callable()
"""


def pyharness_free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    pyharness.main()
