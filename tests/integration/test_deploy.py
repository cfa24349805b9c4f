"""test_deploy.py -- the deployment files in contrib/ say only what arrpcd has: the Kubernetes
manifests (parsed with python3-yaml) use flags `arrpcd --help` lists, probe paths the master
serves, ports the flags name, a grace period above pre-drain plus drain; the HAProxy
configuration is valid (`haproxy -c`) and, run in front of arrpcd with send-proxy-v2 and its
/readyz check, delivers the client's own address to the handler."""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import yaml

import harness
from harness import ROOT, Server
from test_master import wait_until
from test_metrics import fetch, metrics_port

K8S_DIR = os.path.join(ROOT, "contrib", "kubernetes")
HAPROXY_CFG = os.path.join(ROOT, "contrib", "haproxy", "arrpc.cfg")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
PROBE_PATHS = {"/healthz", "/readyz"}


def arrpcd_flags():
    status, out, err = harness.run_arrpcd("--help")
    assert status == 0, err
    return set(re.findall(r"(--[a-z][a-z-]*)", out))


def manifests():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S_DIR, "*.yaml"))):
        with open(path) as f:
            docs += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
    return docs


def flag_values(args):
    """{"--flag": "value"} of "--flag=value" arguments (the manifests' one form)."""
    out = {}
    for a in args:
        name, _, value = a.partition("=")
        out[name] = value
    return out


class KubernetesManifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = manifests()
        cls.by_kind = {}
        for name, d in cls.docs:
            cls.by_kind.setdefault(d["kind"], []).append(d)
        deployment = cls.by_kind["Deployment"][0]
        cls.pod = deployment["spec"]["template"]
        cls.container = cls.pod["spec"]["containers"][0]
        cls.flags = flag_values(cls.container["args"])
        cls.ports = {p["name"]: p["containerPort"] for p in cls.container["ports"]}

    def test_every_file_parses_to_known_kinds(self):
        self.assertEqual(sorted(self.by_kind), ["Deployment", "Service"])
        self.assertEqual(len(self.by_kind["Service"]), 2)

    def test_flags_are_arrpcds(self):
        known = arrpcd_flags()
        for flag in self.flags:
            self.assertIn(flag, known, flag)
        self.assertEqual(self.container["command"], ["arrpcd"])

    def test_ports_match_the_flags(self):
        self.assertEqual(int(self.flags["--listen"].rsplit(":", 1)[1]), self.ports["arrpc"])
        self.assertEqual(int(self.flags["--metrics-listen"].rsplit(":", 1)[1]),
                         self.ports["metrics"])

    def test_probes_use_the_metrics_port_and_paths_arrpcd_serves(self):
        live = self.container["livenessProbe"]["httpGet"]
        ready = self.container["readinessProbe"]["httpGet"]
        self.assertEqual(live["path"], "/healthz")
        self.assertEqual(ready["path"], "/readyz")
        for probe in (live, ready):
            self.assertIn(probe["port"], ("metrics", self.ports["metrics"]))

    def test_graceful_stop_by_pre_drain_within_the_grace_period(self):
        self.assertNotIn("lifecycle", self.container)  # no preStop sleep: --pre-drain does it
        pre_drain = int(self.flags["--pre-drain"])
        drain = int(self.flags["--drain-timeout"])
        self.assertGreater(pre_drain, 0)
        self.assertGreater(self.pod["spec"]["terminationGracePeriodSeconds"], pre_drain + drain)
        # Readiness must notice the 503 well inside the pre-drain.
        ready = self.container["readinessProbe"]
        self.assertLess(ready["periodSeconds"] * ready["failureThreshold"], pre_drain)

    def test_services_select_the_pods_and_name_their_ports(self):
        labels = self.pod["metadata"]["labels"]
        headless = [s for s in self.by_kind["Service"] if s["spec"].get("clusterIP") == "None"]
        self.assertEqual(len(headless), 1)
        for service in self.by_kind["Service"]:
            for k, v in service["spec"]["selector"].items():
                self.assertEqual(labels.get(k), v)
            for port in service["spec"]["ports"]:
                self.assertIn(port["targetPort"], self.ports)

    def test_the_manifests_flags_start_a_server(self):
        # The same flags, on loopback and ephemeral ports, with the demo handler (and no
        # pre-drain: the test stops it at once).
        args = ["%s=%s" % (k, v) for k, v in self.flags.items()
                if k not in ("--listen", "--handler", "--metrics-listen", "--pre-drain")]
        server = Server(*args, "--metrics-listen", "127.0.0.1:0", tls=False).start()
        self.addCleanup(server.stop)
        port = metrics_port(server)
        self.assertEqual(fetch(port, "/readyz")[0], 200)
        with server.connect() as c:
            self.assertEqual(c.call({"echo": 1}), 1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CHECK_INTER = "200ms"  # HAProxy's check interval in tests (contrib's is 2s); nothing else changes


def haproxy_config(test, listen_port, servers):
    """contrib's configuration with its addresses moved to loopback: the frontend on
    127.0.0.1:listen_port, checks every CHECK_INTER, and servers, a list of
    (name, host, port, check_port), in place of contrib's three. A temporary file, removed
    at the test's cleanup."""
    with open(HAPROXY_CFG) as f:
        text = f.read()
    for setting in ("\n    bind :8080\n", " check port 9095 ", " inter 2s "):
        test.assertIn(setting, text, "contrib/haproxy/arrpc.cfg changed: update the tests")
    text = re.sub(r"(?m)^    bind :8080$", "    bind 127.0.0.1:%d" % listen_port, text)
    text = re.sub(r"(?m)^    server .*\n", "", text)
    text = text.replace(" check port 9095 ", " check ")  # each server names its own below
    text = text.replace(" inter 2s ", " inter %s " % CHECK_INTER)
    for name, host, port, check_port in servers:
        text += "    server %s %s:%d port %d\n" % (name, host, port, check_port)
    path = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
    path.write(text)
    path.close()
    test.addCleanup(os.unlink, path.name)
    return path.name


def start_haproxy(test, cfg, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE):
    """haproxy -db (foreground) on cfg; stopped by PID at the test's cleanup."""
    proxy = subprocess.Popen([HAPROXY, "-db", "-f", cfg], stdout=stdout, stderr=stderr)

    def stop():
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()
    test.addCleanup(stop)
    return proxy


@unittest.skipUnless(os.path.exists(HAPROXY), "haproxy is not installed (tools/install-deps.sh)")
class HAProxy(unittest.TestCase):
    def test_configuration_is_valid(self):
        res = subprocess.run([HAPROXY, "-c", "-f", HAPROXY_CFG], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        with open(HAPROXY_CFG) as f:  # the settings, not the comments about them
            text = "".join(line.split("#", 1)[0] + "\n" for line in f)
        self.assertIn("send-proxy-v2", text)
        self.assertIn("uri /readyz", text)
        self.assertNotIn("shutdown-sessions", text)

    def test_client_address_reaches_the_handler_through_haproxy(self):
        server = Server("--workers", "1", "--proxy-protocol", "127.0.0.1",
                        "--metrics-listen", "127.0.0.1:0", tls=False).start()
        self.addCleanup(server.stop)
        listen = free_port()
        start_haproxy(self, haproxy_config(
            self, listen, [("local", "127.0.0.1", server.port, metrics_port(server))]))

        def whoami():
            try:
                with harness.Conn(listen, timeout=5) as c:
                    return c.sock.getsockname()[1], c.call({"whoami": 1})["peer"]
            except (OSError, EOFError):
                return None
        answer = wait_until(whoami, timeout=20)
        self.assertIsNotNone(answer, "no answer through haproxy")
        client_port, peer = answer
        self.assertEqual(peer, "127.0.0.1:%d" % client_port)  # the client's port, not HAProxy's


if __name__ == "__main__":
    harness.main()
