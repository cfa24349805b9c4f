"""py050_server.py -- a server that answers exactly as arrpc 0.5.0's server does, for testing the
C client against the original's behaviour without gevent.

    /usr/bin/python3 py050_server.py [--port P] [--auth-secret S]

Prints "listening on 127.0.0.1:PORT" on stderr once it accepts. As in arrpc 0.5.0 (server.py,
utils.py): requests are unpacked with raw=False; a falsy request gets no reply at all; with a
secret, a request must be {"arrpc.sign": hex HMAC-SHA256, "data": bin} or the reply is the
AuthException string below; a handler's RpcException becomes "arrpc.error.RpcException: <msg>";
any other exception in the handler drops the connection without a reply; replies are packed with
use_bin_type=True and are not signed. One difference: 0.5.0 splits messages with a 4096-byte read
heuristic, this server parses the stream (so large and pipelined messages work); the signature is
compared with hmac.compare_digest.

The handler, like arrpc-demo.so: {"echo": x} answers x, {"fail": msg} raises RpcException(msg),
{"sleep": s} sleeps then answers "slept", {"die": true} raises another exception (the connection
drops), {"bye": x} answers x then closes the connection, {"repeat": [s, n]} answers s * n,
anything else is echoed back.
"""
import argparse
import hashlib
import hmac
import socketserver
import sys
import time

import msgpack

AUTH_ERROR = "Invalid or missing message signature, make sure 'auth_secret' is set/correct"


class AuthException(Exception):
    pass


class RpcException(Exception):
    pass


class CloseAfterReply(Exception):
    def __init__(self, reply):
        super().__init__("bye")
        self.reply = reply


def verify_msg(msg_unpacked, auth_secret):
    """utils.verify_msg of 0.5.0."""
    if not (isinstance(msg_unpacked, dict) and "arrpc.sign" in msg_unpacked
            and "data" in msg_unpacked):
        raise AuthException("Failed to authenticate message, signature not found")
    data = msg_unpacked["data"]
    signature_in_msg = msg_unpacked["arrpc.sign"]
    signature = hmac.new(auth_secret.encode("utf-8"), data, hashlib.sha256).hexdigest()
    if isinstance(signature_in_msg, str) and hmac.compare_digest(signature_in_msg, signature):
        return msgpack.unpackb(data, raw=False)
    raise AuthException("Failed to authenticate message, signature is incorrect")


def only_entry(msg, key):
    if isinstance(msg, dict) and len(msg) == 1 and key in msg:
        return True, msg[key]
    return False, None


def handler(msg):
    for key in ("echo", "fail", "sleep", "die", "bye", "repeat"):
        found, value = only_entry(msg, key)
        if not found:
            continue
        if key == "echo":
            return value
        if key == "fail":
            raise RpcException(value)
        if key == "sleep":
            time.sleep(float(value))
            return "slept"
        if key == "repeat":
            return value[0] * value[1]
        if key == "die":
            raise RuntimeError("the handler died")
        raise CloseAfterReply(value)
    return msg


class Handler(socketserver.BaseRequestHandler):
    auth_secret = None

    def answer(self, msg_unpacked):
        """The body of 0.5.0's _gevent_handler loop for one message; None: no reply."""
        if not msg_unpacked:
            return None
        response = None
        if self.auth_secret:
            try:
                msg_unpacked = verify_msg(msg_unpacked, self.auth_secret)
            except AuthException:
                response = "arrpc.error.AuthException: " + AUTH_ERROR
        if not response:
            try:
                response = handler(msg_unpacked)
            except RpcException as e:
                response = f"arrpc.error.RpcException: {e}"
        return msgpack.packb(response, use_bin_type=True)

    def handle(self):
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 << 20)
        while True:
            try:
                data = self.request.recv(1 << 16)
            except ConnectionResetError:
                return
            if not data:
                return
            unpacker.feed(data)
            try:
                for msg in unpacker:
                    try:
                        reply = self.answer(msg)
                    except CloseAfterReply as bye:
                        self.request.sendall(msgpack.packb(bye.reply, use_bin_type=True))
                        return
                    if reply is not None:
                        self.request.sendall(reply)
            except (ValueError, msgpack.UnpackException):
                return  # undecodable: 0.5.0 drops it; a stream cannot resynchronise


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--auth-secret")
    args = ap.parse_args()
    Handler.auth_secret = args.auth_secret
    with Server(("127.0.0.1", args.port), Handler) as srv:
        print("listening on 127.0.0.1:%d" % srv.server_address[1], file=sys.stderr, flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    main()
