"""test_manpages.py -- what the build writes from each program's option table besides --help:
the man pages in build/man (rendered by man -l, every option named), the bash completion scripts
in build/completion (valid bash, and completing through bash's own complete/compgen machinery),
and where `cmake --install` puts both."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN_DIR, main  # noqa: E402
from test_options import help_options  # noqa: E402

RUN_TIMEOUT = 60  # seconds for one man, bash or cmake run
BUILD_DIR = os.path.dirname(BIN_DIR)
PAGES = {"arrpcd": "8", "arrpc-call": "1", "arrpc-bench": "1"}  # program: man section

# Sources a completion script, then completes COMP_WORDS (the arguments after the script) the way
# bash does on TAB: the function is the one `complete -p PROGRAM` names, called with the program,
# the word and the word before it; prints one candidate a line.
COMPLETE_SH = r'''
source "$1" || exit 1
shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
spec=$(complete -p "$1") || exit 1
[[ $spec =~ -F\ ([^ ]+) ]] || exit 1
"${BASH_REMATCH[1]}" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def completion(program):
    return os.path.join(BUILD_DIR, "completion", program)


def complete(program, *words):
    """The candidates bash offers for the last of words, after `program`."""
    proc = subprocess.run(["bash", "--norc", "-c", COMPLETE_SH, "complete.sh", completion(program),
                           program] + list(words), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, (program, words, proc.stderr)
    return [w for w in proc.stdout.split("\n") if w]


def plain(text):
    """man's output without overstrike and with ASCII hyphens."""
    text = re.sub(r".\x08", "", text)
    return text.replace("\u2010", "-").replace("\u2212", "-")


@unittest.skipUnless(shutil.which("man"), "man is not installed (apt-get install man-db): the "
                     "generated man pages are not checked")
class ManPageFilesTest(unittest.TestCase):
    def test_each_page_renders_naming_every_option(self):
        for program, section in PAGES.items():
            with self.subTest(program=program):
                page = os.path.join(BUILD_DIR, "man", "%s.%s" % (program, section))
                self.assertTrue(os.path.isfile(page), page + " was not built")
                with open(page) as f:
                    head = '.TH "%s" "%s"' % (program.replace("-", "\\-"), section)
                    self.assertTrue(f.read().startswith(head), page)
                proc = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                                      timeout=RUN_TIMEOUT, env=dict(os.environ, MANPAGER="cat",
                                                                    PAGER="cat", MANWIDTH="80"))
                self.assertEqual((proc.returncode, proc.stderr), (0, ""), program)
                text = plain(proc.stdout)
                for name, _ in help_options(program):
                    self.assertIn("--" + name, text)


class CompletionTest(unittest.TestCase):
    def test_each_script_is_valid_bash(self):
        for program in PAGES:
            with self.subTest(program=program):
                self.assertTrue(os.path.isfile(completion(program)), "not built")
                proc = subprocess.run(["bash", "-n", completion(program)], capture_output=True,
                                      text=True, timeout=RUN_TIMEOUT)
                self.assertEqual((proc.returncode, proc.stderr), (0, ""))

    def test_every_option_completes_from_its_prefix(self):
        for program in PAGES:
            for name, _ in help_options(program):
                with self.subTest(program=program, option=name):
                    self.assertIn("--" + name, complete(program, "--" + name[:3]))

    def test_long_and_short_names(self):
        self.assertEqual(complete("arrpcd", "--wor"), ["--workers"])
        self.assertIn("-c", complete("arrpc-bench", "-"))
        self.assertNotIn("--help-man", complete("arrpcd", "--help"))  # hidden

    def test_values(self):
        self.assertEqual(complete("arrpc-bench", "--proto", ""), ["arrpc", "resp"])
        self.assertEqual(complete("arrpc-bench", "--proto", "=", "r"), ["resp"])  # --proto=r
        self.assertEqual(complete("arrpcd", "--workers", ""), [])  # a number: nothing to offer
        self.assertEqual(complete("arrpc-bench", "-c", "--"), [])  # -c's value, not an option
        with tempfile.TemporaryDirectory() as tmp:
            secret = os.path.join(tmp, "secret")
            open(secret, "w").close()
            for program in PAGES:
                with self.subTest(program=program):
                    self.assertEqual(complete(program, "--auth-secret-file", tmp + "/se"),
                                     [secret])
                    self.assertEqual(complete(program, "--auth-secret-file", "=", tmp + "/se"),
                                     [secret])


@unittest.skipUnless(shutil.which("cmake"), "cmake is not installed: the install is not checked")
class InstallTest(unittest.TestCase):
    def test_install_puts_pages_and_completion_in_place(self):
        with tempfile.TemporaryDirectory() as prefix:
            proc = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", prefix],
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            for program, section in PAGES.items():
                with self.subTest(program=program):
                    page = os.path.join(prefix, "share", "man", "man" + section,
                                        "%s.%s" % (program, section))
                    script = os.path.join(prefix, "share", "bash-completion", "completions",
                                          program)
                    self.assertTrue(os.path.isfile(page), proc.stdout)
                    self.assertTrue(os.path.isfile(script), proc.stdout)
                    with open(script) as f:
                        self.assertIn("complete -F ", f.read())


if __name__ == "__main__":
    main()
