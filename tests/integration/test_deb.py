"""test_deb.py -- the Debian packages as a user installs them: tools/build-deb.sh (what `make deb`
runs) copies the checkout to a temporary directory and runs dpkg-buildpackage there; this test
reads what it made with dpkg-deb -c / -I / -e / -x (each package's files, fields and maintainer
scripts), runs the packaged arrpcd, and runs lintian over the .changes, failing on any error.

Skipped, saying why, when dpkg-dev or debhelper is missing (tools/install-deps.sh installs them),
and in sanitized builds: the packages do not depend on the build directory, so the plain build
tests them once.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

BUILD_SCRIPT = os.path.join(harness.ROOT, "tools", "build-deb.sh")
BUILD_JOBS = "2"     # CI has two cores
BUILD_TIMEOUT = 240  # seconds for the whole dpkg-buildpackage run
STEP_TIMEOUT = 120   # seconds for one dpkg-deb, objdump, lintian or arrpcd run
VERSION = "0.1.0"    # debian/changelog; the library's is project(VERSION) in CMakeLists.txt
SONAME = "libarrpc.so.0"
PACKAGES = ("libarrpc0", "libarrpc-dev", "arrpcd", "python3-arrpc")
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "dpkg-deb", "dpkg-architecture")


def run(cmd, timeout=STEP_TIMEOUT, cwd=None):
    """Runs cmd; fails the test with its output when it fails. Returns its stdout text."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd,
                          timeout=timeout)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise AssertionError("%s exited with %d:\n%s" % (" ".join(cmd), proc.returncode, out))
    return out


def build_litter():
    """What a package build run inside the checkout would leave there."""
    names = [n for n in os.listdir(harness.ROOT) if n.startswith("obj-")]
    return names + [p for p in ("debian/.debhelper", "debian/tmp", "debian/files")
                    if os.path.exists(os.path.join(harness.ROOT, p))]


class DebianPackages(unittest.TestCase):
    """One package build for the class; each test reads one package or runs lintian."""

    @classmethod
    def setUpClass(cls):
        if os.environ.get("ARRPC_SANITIZED"):
            raise unittest.SkipTest("skipped: this build is sanitized (%s); the packages are "
                                    "tested by the plain build" % os.environ["ARRPC_SANITIZED"])
        missing = [t for t in BUILD_TOOLS if not shutil.which(t)]
        if missing:
            raise unittest.SkipTest("skipped: %s not found: apt-get install dpkg-dev debhelper "
                                    "(or sh tools/install-deps.sh)" % ", ".join(missing))
        cls.multiarch = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).strip()
        cls.arch = run(["dpkg-architecture", "-qDEB_HOST_ARCH"]).strip()
        cls.tmp = tempfile.mkdtemp(prefix="arrpc-deb-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)  # runs even when setUpClass fails
        litter_before = build_litter()
        cls.build_log = run(["sh", BUILD_SCRIPT, cls.tmp, BUILD_JOBS], timeout=BUILD_TIMEOUT)
        cls.new_litter = sorted(set(build_litter()) - set(litter_before))
        cls.debs = {p: os.path.join(cls.tmp, "%s_%s_%s.deb" % (p, VERSION, cls.arch))
                    for p in PACKAGES}

    def files(self, package):
        """{path: (mode string, link target or None)} of the package's entries, without './'."""
        entries = {}
        for line in run(["dpkg-deb", "-c", self.debs[package]]).splitlines():
            fields = line.split()
            path = fields[5][2:].rstrip("/")
            target = fields[7] if len(fields) > 7 and fields[6] == "->" else None
            entries[path] = (fields[0], target)
        return entries

    def field(self, package, name):
        return run(["dpkg-deb", "-f", self.debs[package], name]).strip()

    def extract(self, package):
        """The package's files unpacked into a directory of their own; returns it."""
        root = os.path.join(self.tmp, "x-" + package)
        if not os.path.isdir(root):
            run(["dpkg-deb", "-x", self.debs[package], root])
        return root

    def control_file(self, package, name):
        """A file of the package's control archive (postinst, prerm, shlibs...), or "" without it."""
        control = os.path.join(self.tmp, "control-" + package)
        if not os.path.isdir(control):
            run(["dpkg-deb", "-e", self.debs[package], control])
        path = os.path.join(control, name)
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def test_build_leaves_the_checkout_alone(self):
        self.assertEqual(self.new_litter, [])

    def test_every_package_is_built(self):
        for package, deb in self.debs.items():
            self.assertTrue(os.path.exists(deb), "%s missing; build log:\n%s"
                            % (deb, self.build_log[-3000:]))

    def test_libarrpc0_holds_the_library_and_its_soname_link(self):
        libdir = "usr/lib/" + self.multiarch
        files = self.files("libarrpc0")
        real = "%s/%s.%s" % (libdir, "libarrpc.so", VERSION)
        self.assertTrue(files[real][0].startswith("-"), files)
        self.assertEqual(files[libdir + "/" + SONAME], ("lrwxrwxrwx", "libarrpc.so." + VERSION))
        self.assertFalse([p for p in files if p.endswith((".a", ".h", ".pc")) or "bin/" in p])
        objdump = run(["objdump", "-p", os.path.join(self.extract("libarrpc0"), real)])
        self.assertRegex(objdump, r"SONAME\s+%s\n" % re.escape(SONAME))
        self.assertEqual(self.field("libarrpc0", "Multi-Arch"), "same")

    def test_libarrpc0_tells_users_to_depend_on_this_version(self):
        shlibs = self.control_file("libarrpc0", "shlibs")
        self.assertEqual(shlibs.strip(), "libarrpc 0 libarrpc0 (>= %s)" % VERSION)

    def test_dev_package_holds_what_a_build_against_arrpc_needs(self):
        libdir = "usr/lib/" + self.multiarch
        files = self.files("libarrpc-dev")
        self.assertEqual(files[libdir + "/libarrpc.so"], ("lrwxrwxrwx", SONAME))
        for path in ("usr/include/arrpc.h", libdir + "/libarrpc.a",
                     libdir + "/pkgconfig/arrpc.pc",
                     libdir + "/cmake/arrpc/arrpcConfig.cmake",
                     libdir + "/cmake/arrpc/arrpcConfigVersion.cmake",
                     libdir + "/cmake/arrpc/arrpcTargets.cmake"):
            self.assertIn(path, files)
        depends = self.field("libarrpc-dev", "Depends")
        for dependency in ("libarrpc0 (= %s)" % VERSION, "libmsgpack-dev", "libwolfssl-dev",
                           "libmicrohttpd-dev"):
            self.assertIn(dependency, depends)

    def test_dev_package_pkg_config_file_finds_the_installed_library(self):
        root = self.extract("libarrpc-dev")
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(
            root, "usr", "lib", self.multiarch, "pkgconfig"), PKG_CONFIG_SYSROOT_DIR="")
        proc = subprocess.run(["pkg-config", "--variable=libdir", "arrpc"], env=env,
                              capture_output=True, text=True, timeout=STEP_TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(os.path.realpath(proc.stdout.strip()),
                         os.path.realpath(os.path.join(root, "usr", "lib", self.multiarch)))

    def test_arrpcd_holds_programs_man_pages_completion_and_units(self):
        files = self.files("arrpcd")
        for program, section in (("arrpcd", "8"), ("arrpc-call", "1"), ("arrpc-bench", "1")):
            self.assertIn("usr/bin/" + program, files)
            self.assertIn("usr/share/man/man%s/%s.%s.gz" % (section, program, section), files)
            self.assertIn("usr/share/bash-completion/completions/" + program, files)
        for unit in ("arrpcd.service", "arrpcd.socket"):
            self.assertIn("lib/systemd/system/" + unit, files)
        self.assertIn("usr/share/doc/arrpcd/README.Debian", files)  # how to set the service up
        self.assertIn("etc/arrpc/arrpcd.conf", files)  # what the service runs with
        self.assertFalse([p for p in files if p.endswith(".so")], "the demo plugin is not shipped")

    def test_python3_arrpc_holds_the_module_and_arrpcds_python_plugin(self):
        files = self.files("python3-arrpc")
        module = "usr/lib/python3/dist-packages/arrpc/"
        for name in ("__init__.py", "client.py", "server.py", "error.py"):
            self.assertIn(module + name, files)
        self.assertTrue([p for p in files if p.startswith(module + "_arrpc.cpython-3")], files)
        self.assertIn("usr/lib/%s/arrpc/arrpc-python.so" % self.multiarch, files)
        depends = self.field("python3-arrpc", "Depends")
        for dependency in ("python3-msgpack", "python3 (>= 3.11)"):
            self.assertIn(dependency, depends)

    def test_packaged_python_module_imports_and_calls(self):
        """The unpacked module, on sys.path, imports (the extension holds the static library)."""
        root = self.extract("python3-arrpc")
        env = dict(os.environ, PYTHONPATH=os.path.join(root, "usr/lib/python3/dist-packages"))
        code = "import arrpc, arrpc.error; print(arrpc.Client.__name__, arrpc.__file__)"
        proc = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True,
                              text=True, timeout=STEP_TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(root, proc.stdout)

    def test_configuration_file_is_a_conffile_the_unit_reads_and_checks(self):
        self.assertIn("/etc/arrpc/arrpcd.conf", self.control_file("arrpcd", "conffiles").split())
        with open(os.path.join(self.extract("arrpcd"), "lib/systemd/system/arrpcd.service")) as f:
            unit = f.read()
        self.assertRegex(unit, r"\nExecStart=/usr/bin/arrpcd --config /etc/arrpc/arrpcd.conf\n")
        self.assertRegex(unit, r"\nExecReload=/usr/bin/arrpcd -t --config /etc/arrpc/arrpcd.conf"
                               r"\nExecReload=/bin/kill -HUP \$MAINPID\n")

    def test_packaged_service_runs_the_packaged_arrpcd(self):
        with open(os.path.join(self.extract("arrpcd"), "lib/systemd/system/arrpcd.service")) as f:
            unit = f.read()
        self.assertRegex(unit, r"\nExecStart=/usr/bin/arrpcd ")
        self.assertNotIn("/usr/local/bin", unit)

    def test_packaged_arrpcd_runs(self):
        arrpcd = os.path.join(self.extract("arrpcd"), "usr", "bin", "arrpcd")
        self.assertIn("arrpcd", run([arrpcd, "--version"]))

    def test_install_neither_enables_nor_starts_the_service(self):
        postinst = self.control_file("arrpcd", "postinst")
        invoked = re.findall(r"deb-systemd-invoke (\S+)", postinst)
        self.assertEqual(invoked, ["try-restart"], "only an upgrade restarts a running arrpcd")
        lines = [l.strip() for l in postinst.splitlines()]
        lines = [l for l in lines if l and not l.startswith("#")]
        for i, line in enumerate(lines):
            if line.startswith("deb-systemd-helper enable"):  # only to keep an admin's choice
                self.assertIn("was-enabled", lines[i - 1], postinst)
        self.assertNotRegex(postinst, r"adduser|useradd")  # the unit uses DynamicUser=yes

    def test_removal_stops_the_service(self):
        prerm = self.control_file("arrpcd", "prerm")
        self.assertRegex(prerm, r'"\$1" = remove .*\n\s*deb-systemd-invoke stop arrpcd.socket '
                                r'arrpcd.service')

    def test_lintian_reports_no_error(self):
        if not shutil.which("lintian"):
            self.skipTest("skipped: lintian not found: apt-get install lintian")
        changes = os.path.join(self.tmp, "arrpc_%s_%s.changes" % (VERSION, self.arch))
        proc = subprocess.run(["lintian", "--fail-on", "error", changes], capture_output=True,
                              text=True, timeout=STEP_TIMEOUT)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertNotRegex(proc.stdout, r"(?m)^E: ")


if __name__ == "__main__":
    harness.main()
