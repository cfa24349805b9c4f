"""arrpc.error -- the exceptions arrpc raises, with arrpc 0.5.0's names.

A client raises ConnectException when it cannot reach the server (after its retries) or the
connection broke while a request was in flight, AuthException when the server refused the
request's signature, RpcTimeoutException when a send took longer than the client's timeout, and
RpcException when the handler failed: its message is the handler's. A handler raises
RpcException to answer with an error; any other exception it raises reaches the client as an
RpcException "<TypeName>: <message>".
"""


class ArrpcException(Exception):
    """The base of every arrpc error (0.5.0 had none: catch the four below for that)."""


class ConnectException(ArrpcException):
    """The server cannot be reached, or the connection broke before a reply came."""


class AuthException(ArrpcException):
    """The server refused the request's HMAC signature (auth_secret missing or different)."""


class RpcTimeoutException(ArrpcException):
    """send() took longer than the client's timeout; the connection was closed."""


class RpcException(ArrpcException):
    """The remote handler failed; str() is its message."""
