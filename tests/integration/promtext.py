"""promtext.py -- helpers for tests of Prometheus output: parse the text format, run
`promtool check metrics` (Debian's prometheus package; missing promtool fails the test, it
never skips), and fetch a URL with a bounded wait."""
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

PROMTOOL_TIMEOUT = 30.0  # seconds for one promtool run
HTTP_TIMEOUT = 10.0      # seconds for one HTTP request

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def _unescape(value):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse(text):
    """{(name, frozenset of (label, value)): float} for every sample line; raises ValueError on a
    line that is neither a sample nor a comment."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("not a sample line: %r" % line)
        labels, rest = {}, m.group(2) or ""
        while rest:
            lm = _LABEL.match(rest)
            if not lm:
                raise ValueError("bad labels in %r" % line)
            labels[lm.group(1)] = _unescape(lm.group(2))
            rest = rest[lm.end():]
        key = (m.group(1), frozenset(labels.items()))
        if key in samples:
            raise ValueError("duplicate sample: %r" % line)
        samples[key] = float(m.group(3))
    return samples


def value(samples, name, **labels):
    """The value of the sample `name` with exactly these labels; None when absent."""
    return samples.get((name, frozenset(labels.items())))


def promtool():
    """The promtool program; raises AssertionError (a test failure) when it is not installed."""
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not os.access(path, os.X_OK):
        raise AssertionError("promtool not found: apt-get install prometheus "
                             "(tools/install-deps.sh installs it)")
    return path


def check(text):
    """Runs `promtool check metrics` on text: (exit status, its output)."""
    proc = subprocess.run([promtool(), "check", "metrics"], input=text.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=PROMTOOL_TIMEOUT)
    return proc.returncode, proc.stdout.decode(errors="replace")


def http(url, method="GET"):
    """(status, body text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as res:
            return res.status, res.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def local_labels():
    """hostname and k8s_namespace as arrpc reads them: the first line of each file, or empty."""
    def first_line(path):
        try:
            with open(path, "rb") as f:
                return f.readline().decode(errors="replace").rstrip("\r\n")
        except OSError:
            return ""
    return {"hostname": first_line("/etc/hostname"),
            "k8s_namespace": first_line(
                "/var/run/secrets/kubernetes.io/serviceaccount/namespace")}
