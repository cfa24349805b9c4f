"""arrpc -- MessagePack RPC over TCP, the arrpc 0.5.0 API on the C core of this project.

    server = arrpc.Server("127.0.0.1", 8080, handler)   # handler(message) -> reply
    server.start()                                       # or start(background=True)
    client = arrpc.Client("127.0.0.1", 8080)
    client.send({"foo": "bar"})

See docs/python.md for what is new since 0.5.0 (workers, threads, send_batch, close, stop).
"""
from . import error
from .client import Client
from .server import Server, DEFAULT_THREADS

__all__ = ["Client", "Server", "error", "DEFAULT_THREADS"]
