"""test_consumer.py -- arrpc as its users get it: installed with cmake --install into a temporary
prefix, then used by a project of their own (tests/consumer) through find_package(arrpc CONFIG)
(arrpc::arrpc and arrpc::arrpc_static) and through pkg-config (shared, and static with
--static), each program calling the real arrpcd once.

Everything is built in a temporary directory, removed at the end: the source tree is only read.
ctest sets ARRPC_BUILD_DIR (the build to install) and ARRPC_CMAKE (the cmake that made it).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

import harness

BUILD_DIR = os.environ.get("ARRPC_BUILD_DIR", os.path.dirname(harness.BIN_DIR))
CMAKE = os.environ.get("ARRPC_CMAKE", "cmake")
CONSUMER_SRC = os.path.join(harness.ROOT, "tests", "consumer")
STEP_TIMEOUT = 240  # seconds for one install, configure, build or compile
RUN_TIMEOUT = 30    # seconds for one consumer call
REPLY = '{"consumer"=>"hello"}'  # msgpack_object_print of the echoed request


def run(cmd, env=None, timeout=STEP_TIMEOUT):
    """Runs cmd; fails the test with its output when it fails. Returns its stdout text."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          timeout=timeout)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        raise AssertionError("%s exited with %d:\n%s" % (" ".join(cmd), proc.returncode, out))
    return out


def linkable(flag):
    """False for a -lNAME the linker cannot find. pkg-config --static also lists the private
    libraries of arrpc's dependencies (gnutls's -lunistring, through libmicrohttpd), whose
    development files need not be installed: those dependencies are linked shared here and
    bring their own. A library arrpc.pc leaves out still fails the link."""
    if not flag.startswith("-l"):
        return True
    for name in ("lib%s.so" % flag[2:], "lib%s.a" % flag[2:]):
        path = run(["cc", "-print-file-name=" + name]).strip()
        if os.path.isabs(path) and os.path.exists(path):
            return True
    return False


def needed(binary):
    """The DT_NEEDED entries of an ELF file (objdump -p)."""
    out = run(["objdump", "-p", binary])
    return [line.split()[1] for line in out.splitlines() if line.strip().startswith("NEEDED")]


class InstalledArrpc(unittest.TestCase):
    """One install and one consumer build for the class; each test runs one consumer binary."""

    @classmethod
    def setUpClass(cls):
        if os.environ.get("ARRPC_SANITIZED"):
            # A sanitized libarrpc needs the sanitizer runtime in every program that links it:
            # an installed library is never built that way. The plain build runs this test.
            raise unittest.SkipTest("skipped: this build is sanitized (%s); packaging is tested "
                                    "by the plain build" % os.environ["ARRPC_SANITIZED"])
        cls.tmp = tempfile.mkdtemp(prefix="arrpc-consumer-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)  # runs even when setUpClass fails
        cls.prefix = os.path.join(cls.tmp, "prefix")
        run([CMAKE, "--install", BUILD_DIR, "--prefix", cls.prefix])
        cls.libdir = cls._libdir()
        cls.env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(cls.libdir, "pkgconfig"))
        cls.programs = {}
        cls._build_with_cmake()
        cls._build_with_pkg_config()

    @classmethod
    def _libdir(cls):
        """The prefix's library directory: the one that got libarrpc.so (lib, or a multiarch one)."""
        for root, _, files in os.walk(cls.prefix):
            if "libarrpc.so" in files:
                return root
        raise AssertionError("cmake --install put no libarrpc.so under " + cls.prefix)

    @classmethod
    def _build_with_cmake(cls):
        build = os.path.join(cls.tmp, "cmake-build")
        run([CMAKE, "-S", CONSUMER_SRC, "-B", build, "-DCMAKE_PREFIX_PATH=" + cls.prefix,
             "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"], env=cls.env)
        run([CMAKE, "--build", build], env=cls.env)
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            cls.cmake_cache = f.read()
        cls.programs["cmake_shared"] = os.path.join(build, "consumer_shared")
        cls.programs["cmake_static"] = os.path.join(build, "consumer_static")

    @classmethod
    def _build_with_pkg_config(cls):
        """cc consumer.c $(pkg-config --cflags --libs arrpc); the static build names libarrpc.a
        and takes the rest from pkg-config --static (Requires.private, Libs.private), so that a
        library missing there fails the link."""
        source = os.path.join(CONSUMER_SRC, "consumer.c")
        flags = run(["pkg-config", "--cflags", "--libs", "arrpc"], env=cls.env).split()
        static = run(["pkg-config", "--static", "--cflags", "--libs", "arrpc"], env=cls.env).split()
        static = [f for f in static if f != "-larrpc" and linkable(f)]
        for name, args in (("pc_shared", flags),
                           ("pc_static", [os.path.join(cls.libdir, "libarrpc.a")] + static)):
            out = os.path.join(cls.tmp, "consumer_" + name)
            run(["cc", "-Wall", "-Werror", "-o", out, source] + args, env=cls.env)
            cls.programs[name] = out

    def test_package_found_in_prefix(self):
        self.assertIn("arrpc_DIR:PATH=" + os.path.join(self.libdir, "cmake", "arrpc"),
                      self.cmake_cache)

    def test_pkg_config_prefix_follows_install(self):
        cflags = run(["pkg-config", "--cflags-only-I", "arrpc"], env=self.env).split()
        includes = [os.path.realpath(f[2:]) for f in cflags]
        self.assertIn(os.path.realpath(os.path.join(self.prefix, "include")), includes)

    def test_shared_consumers_need_libarrpc_so_0(self):
        for name in ("cmake_shared", "pc_shared"):
            self.assertIn("libarrpc.so.0", needed(self.programs[name]), name)

    def test_static_consumers_do_not_need_libarrpc_so(self):
        for name in ("cmake_static", "pc_static"):
            self.assertFalse([n for n in needed(self.programs[name]) if "arrpc" in n], name)

    def test_each_consumer_calls_arrpcd(self):
        env = dict(os.environ, LD_LIBRARY_PATH=self.libdir)
        with harness.Server(handler="echo", tls=False) as srv:
            for name, program in sorted(self.programs.items()):
                with self.subTest(consumer=name):
                    proc = subprocess.run([program, "127.0.0.1", str(srv.port)], env=env,
                                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
                    self.assertEqual(proc.returncode, 0, proc.stderr)
                    self.assertEqual(proc.stdout.strip(), REPLY)

    def test_shared_consumer_loads_the_installed_library(self):
        env = dict(os.environ, LD_LIBRARY_PATH=self.libdir)
        out = run(["ldd", self.programs["pc_shared"]], env=env)
        line = [l for l in out.splitlines() if "libarrpc.so" in l]
        self.assertTrue(line and self.libdir in line[0], out)


if __name__ == "__main__":
    harness.main()
