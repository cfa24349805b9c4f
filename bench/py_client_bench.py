"""py_client_bench.py -- sequential calls per second of Python clients against one server, for
bench/python.sh, with the client's CPU time per call: a plain socket + msgpack client (what
0.5.0's client does, without gevent), arrpc.Client.send with its default reply spin and with
spin_us=0 (sleeps in poll at once, as the plain client sleeps in recv), and
arrpc.Client.send_batch of BATCH requests (counted per request).

    /usr/bin/python3 py_client_bench.py PORT [SECONDS]
"""
import socket
import sys
import time

import msgpack

import arrpc

BATCH = 100
REQUEST = {"echo": "x" * 16}


def rate(call, seconds, per_call=1):
    """(calls per second, client CPU microseconds per call)"""
    end = time.perf_counter() + seconds
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() < end:
        call()
        n += per_call
    return n / (time.perf_counter() - start), (time.process_time() - cpu) * 1e6 / n


def plain_client(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    unpacker = msgpack.Unpacker(raw=False)

    def call():
        sock.sendall(msgpack.packb(REQUEST, use_bin_type=True))
        while True:
            for reply in unpacker:
                return reply
            unpacker.feed(sock.recv(65536))
    return call


def main():
    port, seconds = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    cli = arrpc.Client("127.0.0.1", port)
    sleeper = arrpc.Client("127.0.0.1", port, spin_us=0)
    batch = [REQUEST] * BATCH
    results = {
        "plain_socket_msgpack": rate(plain_client(port), seconds),
        "arrpc_send": rate(lambda: cli.send(REQUEST), seconds),
        "arrpc_send_spin_us_0": rate(lambda: sleeper.send(REQUEST), seconds),
        "arrpc_send_batch_100": rate(lambda: cli.send_batch(batch), seconds, BATCH),
    }
    base = results["plain_socket_msgpack"][0]
    for name, (value, cpu) in results.items():
        print("%-22s %10.0f calls/s  %5.2fx the plain client  %7.2f us client CPU per call"
              % (name, value, value / base, cpu))


if __name__ == "__main__":
    main()
