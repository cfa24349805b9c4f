"""The examples of arrpc 0.5.0's README (../shared/arrpc-0.5.0-README.md beside the checkout) run
against this package and do what that README says. Each example is read from the README itself;
only what cannot run as printed is changed, mechanically: the ports 8080 and 8443 become ephemeral
ones, an elided argument list "..." is filled with the host and port (and handler) of the example
above it, the placeholder "<same high entropy string>" becomes the string it names, and an except block whose body is only a comment prints which exception it caught. The
metrics examples are left out: they listen on every address (0.5.0's exporter did), and tests
listen on loopback only (test_py_server covers metrics)."""
import os
import re
import shutil
import socket
import tempfile

import pyharness
from pyharness import harness

README = os.environ.get("ARRPC_050_README", os.path.join(
    pyharness.ROOT, "..", "shared", "arrpc-0.5.0-README.md"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def blocks():
    with open(README) as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def runnable(code, port, tls_port=None, server_args=None):
    """The mechanical changes listed in the module's docstring."""
    code = code.replace("<same high entropy string>", "<high entropy string>")
    code = code.replace("8080", str(port)).replace("8443", str(tls_port or port))
    if server_args:
        code = code.replace("arrpc.Server(...", "arrpc.Server(%s" % server_args)
    code = code.replace("arrpc.Client(...", 'arrpc.Client("127.0.0.1", %d' % port)
    lines, out = code.splitlines(), []
    for i, line in enumerate(lines):
        out.append(line)
        if re.match(r"\s*except .* as e:$", line) and i + 1 < len(lines) and \
                lines[i + 1].strip().startswith("#"):
            indent = re.match(r"\s*", lines[i + 1]).group(0)
            out.append(indent + "print('handled', type(e).__name__, flush=True)")
    return "import arrpc\n" + "\n".join(out) + "\n"


@harness.unittest.skipUnless(os.path.exists(README), "no arrpc 0.5.0 README at " + README)
class Readme(harness.unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = blocks()
        cls.dir = tempfile.mkdtemp(prefix="arrpc-readme-")
        p = harness.pki()
        shutil.copy(p.server[0], os.path.join(cls.dir, "server.crt"))
        shutil.copy(p.server[1], os.path.join(cls.dir, "server.key"))
        shutil.copy(p.ca[0], os.path.join(cls.dir, "ca.crt"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def block(self, marker):
        """The first example that contains marker."""
        for code in self.b:
            if marker in code:
                return code
        self.fail("no example with %r in the README" % marker)

    def serve(self, code, port):
        script = pyharness.Script(code, cwd=self.dir)
        self.addCleanup(script.stop)
        deadline_text = "listening"  # the C server's log line is not printed: poll the port
        pyharness.time.sleep(0.05)
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return script
            except OSError:
                if script.proc.poll() is not None:
                    break
                pyharness.time.sleep(0.05)
        self.fail("the example server did not listen (%s):\n%s" % (deadline_text, script.output()))

    def run_client(self, code):
        status, out = pyharness.run_script(code, cwd=self.dir)
        self.assertEqual(status, 0, out)
        return out

    def test_server_and_client(self):
        port = free_port()
        server = self.serve(runnable(self.block("server.start()\n"), port), port)
        out = self.run_client(runnable(self.block('response = client.send({"foo": "bar"})\n'
                                                  'print(response)'), port))
        self.assertIn("got it", out)
        self.assertIn("{'foo': 'bar'}", server.output())

    def test_background_start(self):
        port = free_port()
        server_code = self.block("server.start()\n").replace(
            "server.start()", self.block("background=True").strip())
        self.run_client(runnable(server_code, port) + "import time\ntime.sleep(0.2)\n")

    def handler_then(self, example, port, tls_port=None, server_args=None):
        """The first server example's handler, then the given example, then start()."""
        head = self.block("server.start()\n").split("server = ")[0]
        return runnable(head + example + "server.start()\n", port, tls_port, server_args)

    def test_tls_known_ca_and_self_signed(self):
        port = free_port()
        self.serve(self.handler_then(self.block("tls_certfile"), port, port), port)
        for marker in ('tls_cafile="ca.crt"', "tls_self_signed=True"):
            with self.subTest(client=marker):
                code = runnable(self.block(marker), port, port)
                out = self.run_client(code + 'print(client.send({"foo": "bar"}))\n')
                self.assertIn("got it", out)

    def test_message_authentication(self):
        port = free_port()
        example = self.block('arrpc.Server(..., auth_secret=')
        self.serve(self.handler_then(example, port, server_args='"127.0.0.1", %d, handler' % port),
                   port)
        code = runnable(self.block('arrpc.Client(..., auth_secret='), port)
        self.assertIn("got it", self.run_client(code + 'print(client.send({"foo": "bar"}))\n'))

    def test_auth_exception(self):
        port = free_port()
        self.serve(self.handler_then('server = arrpc.Server(..., auth_secret="another")\n', port,
                                     server_args='"127.0.0.1", %d, handler' % port), port)
        out = self.run_client(runnable(self.block("except arrpc.error.AuthException"), port))
        self.assertIn("handled AuthException", out)

    def test_retries_timeout_and_debug(self):
        port = free_port()
        self.serve(self.handler_then(self.block("arrpc.Server(..., debug=True)"), port,
                                     server_args='"127.0.0.1", %d, handler' % port), port)
        for marker in ("con_max_retries=3", "arrpc.Client(..., debug=True)"):
            with self.subTest(client=marker):
                code = runnable(self.block(marker), port)
                self.assertIn("got it", self.run_client(code + 'print(client.send({"foo": 1}))\n'))

    def test_connect_exception(self):
        out = self.run_client(runnable(self.block("except arrpc.error.ConnectException"),
                                       free_port()))
        self.assertIn("handled ConnectException", out)

    def test_timeout_exception(self):
        port = free_port()
        slow = ("import time\ndef handler(message):\n    time.sleep(2)\n    return 1\n"
                "server = arrpc.Server('127.0.0.1', %d, handler)\nserver.start()\n" % port)
        self.serve("import arrpc\n" + slow, port)
        out = self.run_client(runnable(self.block("except arrpc.error.RpcTimeoutException"), port))
        self.assertIn("handled RpcTimeoutException", out)

    def test_rpc_exception(self):
        port = free_port()
        self.serve(runnable(self.block('raise RpcException("Something went wrong")'), port), port)
        out = self.run_client(runnable(self.block("except arrpc.error.RpcException"), port))
        self.assertIn("Something went wrong", out)


if __name__ == "__main__":
    pyharness.main()
