"""server.py -- arrpc.Server: arrpc 0.5.0's signature over the C server."""
import os
import socket

from . import _arrpc
from ._units import ms, secret_bytes

# Handler threads per process. A handler that waits (time.sleep, a socket, a database driver)
# lets go of the GIL, so each waiting call holds one thread and nothing else: with 16 threads,
# 16 connections can wait at once while the others are still answered, which is what 0.5.0's
# greenlets gave. Handlers that only compute gain nothing from threads (the GIL runs one at a
# time): threads=0 runs them in the event loop and saves the hand-off to a thread.
DEFAULT_THREADS = 16
DEFAULT_HANDLER_TIMEOUT = 30.0  # seconds; with workers, a stuck worker is replaced after it
METRICS_HOST = "0.0.0.0"  # 0.5.0's exporter listened on every address
LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at descriptor 3


def _inherited_sockets():
    """True when listening sockets were passed to this very process (LISTEN_FDS, LISTEN_PID)."""
    return (os.environ.get("LISTEN_FDS", "0") != "0"
            and os.environ.get("LISTEN_PID") == str(os.getpid()))


class Server:
    """Serves handler(message) -> reply on host:port.

    The positional parameters are arrpc 0.5.0's, in its order. Keyword-only, beyond 0.5.0:
    workers (None: 0, serve in this process, or 1 when metrics=True, which needs the pre-fork
    master; N >= 1: N worker processes under a master), threads (handler threads per process,
    default DEFAULT_THREADS; 0: in the event loop), tls_client_ca (require client certificates
    signed by this CA: mutual TLS), max_message (bytes), idle_timeout (seconds; None: never),
    handler_timeout (seconds; with workers, a worker stuck this long in one call is replaced),
    metrics_host, pid_file (with workers: the master's pid, for signals: HUP reloads, USR2
    upgrades, TTIN/TTOU add or remove a worker; see docs/python.md).
    """

    def __init__(self, host, port, handler, debug=False, tls_certfile=None, tls_keyfile=None,
                 auth_secret=None, metrics=False, metrics_port=9095, *, workers=None,
                 threads=DEFAULT_THREADS, tls_client_ca=None, max_message=None, idle_timeout=None,
                 handler_timeout=DEFAULT_HANDLER_TIMEOUT, metrics_host=METRICS_HOST,
                 pid_file=None):
        if workers is None:
            workers = 1 if metrics else 0
        if metrics and workers == 0:
            raise ValueError("metrics are served by the pre-fork master: give workers >= 1")
        self.handler = handler
        self._core = _arrpc.Server(
            host, port, handler, debug=bool(debug), tls_certfile=tls_certfile,
            tls_keyfile=tls_keyfile, tls_client_ca=tls_client_ca,
            auth_secret=secret_bytes(auth_secret),
            metrics_host=metrics_host if metrics else None, metrics_port=metrics_port,
            workers=int(workers), threads=int(threads), max_message=max_message or 0,
            idle_timeout_ms=ms(idle_timeout, "idle_timeout"),
            handler_timeout_ms=ms(handler_timeout, "handler_timeout"),
            handler_name=getattr(handler, "__name__", type(handler).__name__),
            pid_file=pid_file)
        self.workers = int(workers)
        self.port = None

    def _bind(self):
        if self.workers and _inherited_sockets():
            # a binary upgrade (USR2) or systemd passed the sockets: the master adopts them
            with socket.socket(fileno=os.dup(LISTEN_FDS_START)) as sock:
                self.port = sock.getsockname()[1]
            return
        self.port = self._core.bind()

    def start(self, background=False):
        """Serves in the foreground until stop() or Ctrl-C; background=True returns once the
        server accepts connections. With workers, a foreground start makes this process the
        master (SIGTERM or SIGINT stops it) and runs no Python code of its own meanwhile."""
        self._bind()
        if background:
            self._core.start()
        else:
            self._core.serve()

    def stop(self):
        """Stops accepting, answers every request already read, and waits until done. From
        inside a handler it only asks (a handler cannot wait for its own server)."""
        self._core.stop()

    def request_stop(self):
        """Asks the server to stop and returns at once (for handlers and signal handlers)."""
        self._core.request_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
