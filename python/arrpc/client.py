"""client.py -- arrpc.Client: arrpc 0.5.0's signature over the C client."""
from . import _arrpc
from ._units import ms, secret_bytes

METRICS_HOST = "0.0.0.0"  # 0.5.0's exporter listened on every address


def spin_microseconds(value):
    us = int(value)
    if us < 0:
        raise ValueError("spin_us must be 0 or more, not %r" % (value,))
    return us


class Client:
    """A connection to an arrpc server, opened on the first send and kept.

    The positional parameters are arrpc 0.5.0's, in its order. timeout bounds one send (or
    batch) in seconds, None for no limit; a send that times out closes the connection.
    con_max_retries is the number of connect tries, 1 s, 2 s, 3 s ... apart. Keyword-only,
    beyond 0.5.0: connect_timeout (seconds per connect try; None: the system's), tls_certfile and
    tls_keyfile (a client certificate for mutual TLS), tls_server_name (the name the server's
    certificate must carry; default: host), max_message (bytes each way), metrics_host,
    retry_backoff (seconds added to each wait between connect tries), spin_us (how long a send
    may read for its reply without sleeping; None: 50 us, 0: never; docs/python.md).
    """

    def __init__(self, host, port, timeout=None, con_max_retries=5, debug=False, tls_cafile=None,
                 tls_self_signed=False, auth_secret=None, metrics=False, metrics_port=9095, *,
                 connect_timeout=None, tls_certfile=None, tls_keyfile=None, tls_server_name=None,
                 max_message=None, metrics_host=METRICS_HOST, retry_backoff=1.0, spin_us=None):
        self._core = _arrpc.Client(
            host, port, timeout_ms=ms(timeout, "timeout"),
            connect_timeout_ms=ms(connect_timeout, "connect_timeout"),
            retries=max(1, int(con_max_retries)), backoff_ms=ms(retry_backoff, "retry_backoff"),
            debug=bool(debug), auth_secret=secret_bytes(auth_secret), tls_cafile=tls_cafile,
            self_signed=bool(tls_self_signed), tls_certfile=tls_certfile, tls_keyfile=tls_keyfile,
            server_name=tls_server_name, max_message=max_message or 0, metrics=bool(metrics),
            metrics_host=metrics_host, metrics_port=metrics_port,
            spin_us=-1 if spin_us is None else spin_microseconds(spin_us))
        # The C methods themselves: no Python frame between the caller and the network.
        self.send = self._core.send
        self.send_batch = self._core.send_batch
        self.close = self._core.close

    @property
    def metrics_port(self):
        """The port the metrics exporter listens on (useful with metrics_port=0); 0 when off."""
        return self._core.metrics_port()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
