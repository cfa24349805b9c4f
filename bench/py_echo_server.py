"""py_echo_server.py -- an echo server for bench/python.sh, in the foreground on 127.0.0.1:0.

    /usr/bin/python3 py_echo_server.py asyncio            # the reference, written as 0.5.0 works
    /usr/bin/python3 py_echo_server.py arrpc [--workers N] [--threads N]

Prints "listening on 127.0.0.1:PORT" on stderr once it accepts. The handler echoes its request,
except {"sleep": s}, which sleeps s seconds first (time.sleep: the stall measurement), and
{"work": n}, which first computes in Python for n loop steps holding the GIL (a handler bound by
the CPU and the GIL: the workers measurement).

The asyncio reference does what arrpc 0.5.0's server does per connection, with asyncio in place
of gevent: read up to 4096 bytes, unpack them as one message (raw=False), call the handler, pack
the reply (use_bin_type=True), write it. Like 0.5.0 it reads one message per read, which holds
for the small unpipelined requests the benchmark sends.
"""
import argparse
import asyncio
import sys
import time

import msgpack

READ_SIZE = 4096  # 0.5.0's read size


def handler(message):
    if isinstance(message, dict):
        if "sleep" in message:
            time.sleep(message["sleep"])
        elif "work" in message:
            total = 0
            for i in range(message["work"]):
                total += i * i
    return message


async def serve_connection(reader, writer):
    while True:
        data = await reader.read(READ_SIZE)
        if not data:
            break
        reply = handler(msgpack.unpackb(data, raw=False))
        writer.write(msgpack.packb(reply, use_bin_type=True))
        await writer.drain()
    writer.close()


async def serve_asyncio():
    server = await asyncio.start_server(serve_connection, "127.0.0.1", 0)
    print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], file=sys.stderr,
          flush=True)
    await server.serve_forever()


def serve_arrpc(workers, threads):
    import arrpc
    server = arrpc.Server("127.0.0.1", 0, handler, workers=workers, threads=threads)
    server._bind()
    print("listening on 127.0.0.1:%d" % server.port, file=sys.stderr, flush=True)
    server._core.serve()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("asyncio", "arrpc"))
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.kind == "asyncio":
        try:
            asyncio.run(serve_asyncio())
        except KeyboardInterrupt:
            pass
    else:
        import arrpc
        serve_arrpc(args.workers, arrpc.DEFAULT_THREADS if args.threads is None else args.threads)


if __name__ == "__main__":
    main()
