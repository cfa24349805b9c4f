#!/usr/bin/python3
"""make_corpus.py -- writes the seed corpus of each libFuzzer harness to tests/fuzz/corpus/<name>/.

Run with Debian's /usr/bin/python3 and python3-msgpack: /usr/bin/python3 tests/fuzz/make_corpus.py
The output is deterministic; the committed corpus is exactly what this script writes (it removes
files it did not write). Each seed is small: the fuzzers grow the rest.
"""
import hashlib
import hmac
import json
import os
import struct

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ_SECRET = b"fuzz secret"  # tests/fuzz/fuzz_auth.c verifies with the same secret
RPC = "arrpc.error.RpcException: "
AUTH = "arrpc.error.AuthException: "


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def sign(data, secret=FUZZ_SECRET):
    mac = hmac.new(secret, data, hashlib.sha256).hexdigest()
    return pack({"arrpc.sign": mac, "data": data})


def nested(depth, leaf=None):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# Single MessagePack values covering every type byte family, as 0.5.0's client packs them.
VALUES = {
    "nil": None, "true": True, "false": False, "fixint": 7, "negfixint": -3, "uint8": 200,
    "uint16": 60000, "uint32": 4000000000, "uint64": 2**64 - 1, "int8": -100, "int16": -30000,
    "int32": -2**31, "int64": -2**63, "float64": 1.5, "fixstr": "hello", "str8": "x" * 40,
    "str16": "y" * 300, "utf8": "h\u00e9llo \u2603 \U0001f600", "bin8": b"\x00\x01\xff",
    "bin16": bytes(range(256)) * 2, "empty-map": {}, "empty-array": [], "empty-str": "",
    "request": {"echo": "hello"}, "map-mixed": {"a": [1, 2.5, None], "b": {"c": b"d"}},
    "array16": list(range(20)), "map16": {str(i): i for i in range(17)},
    "nested-8": nested(8), "nested-32": nested(32), "nested-33": nested(33),
    "int-keys": {1: "one", 2: [None]},
}

RAW = {  # hand-made bytes: forms python-msgpack does not produce, and hostile headers
    "float32": b"\xca\x3f\xc0\x00\x00",
    "fixext1": b"\xd4\x01\x02", "fixext16": b"\xd8\x05" + bytes(16),
    "ext8": b"\xc7\x03\x07abc", "ext16": b"\xc8\x00\x02\xfe\x00\x01", "ext32": b"\xc9\x00\x00\x00\x01\x01\x00",
    "str8-short": b"\xd9\x01a", "bin32": b"\xc6\x00\x00\x00\x02hi", "str32": b"\xdb\x00\x00\x00\x01z",
    "array32": b"\xdd\x00\x00\x00\x01\xc0", "map32": b"\xdf\x00\x00\x00\x01\xa1k\xc3",
    "never-used-c1": b"\xc1", "huge-array": b"\xdd\x10\x00\x00\x00", "huge-map": b"\xdf\xff\xff\xff\xff",
    "huge-str": b"\xdb\xff\xff\xff\xff", "huge-bin": b"\xc6\x7f\xff\xff\xff",
    "huge-ext": b"\xc9\xff\xff\xff\xff\x01", "truncated-str": b"\xa5abc",
    "truncated-map": b"\x82\xa1a\x01", "truncated-uint64": b"\xcf\x00\x00",
    "invalid-utf8-str": b"\xa2\xff\xfe", "dup-keys": b"\x82\xa1a\x01\xa1a\x02",
    "tag-key-map": pack({"$bin": "AAAA"}), "nan": b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
}


def messages():
    out = {name: pack(v) for name, v in VALUES.items()}
    out.update(RAW)
    return out


def scan_corpus(msgs):
    """fuzz_scan: [limits][split hi][split lo] + stream."""
    seeds = {}
    for i, (name, m) in enumerate(sorted(msgs.items())):
        limits = (i * 37) & 0xff  # spread over the four sizes and the depths
        split = len(m) // 2
        seeds[name] = bytes([limits | 3 if "nested" in name else limits]) + struct.pack(">H", split) + m
    pipeline = pack({"echo": 1}) + pack([1, 2]) + pack("three") + RAW["truncated-map"]
    seeds["pipeline"] = b"\x7f\x00\x05" + pipeline
    seeds["pipeline-bad"] = b"\x7f\x00\x03" + pack(1) + RAW["never-used-c1"] + pack(2)
    seeds["at-size-limit"] = b"\x00\x00\x01" + pack("1234567")  # 8 bytes, limit 8
    seeds["over-size-limit"] = b"\x00\x00\x01" + pack("12345678")
    seeds["at-depth-limit"] = b"\x03\x00\x01" + pack(nested(1))
    seeds["over-depth-limit"] = b"\x03\x00\x01" + pack(nested(2))
    return seeds


def auth_corpus(msgs):
    """fuzz_auth: one request as received, signed or not."""
    seeds = {}
    for name in ("request", "map-mixed", "nil", "empty-map", "nested-8", "utf8", "int-keys"):
        seeds["signed-" + name] = sign(msgs[name])
        seeds["plain-" + name] = msgs[name]
    mac = hmac.new(FUZZ_SECRET, pack(1), hashlib.sha256).hexdigest()
    seeds["signed-empty-data"] = sign(b"")
    seeds["signed-bad-data"] = sign(b"\xc1\x00")
    seeds["signed-truncated-data"] = sign(RAW["truncated-map"])
    seeds["signed-two-values"] = sign(pack(1) + pack(2))
    seeds["signed-too-deep"] = sign(msgs["nested-33"])
    seeds["wrong-secret"] = sign(pack(1), secret=b"other")
    seeds["upper-hex"] = pack({"arrpc.sign": mac.upper(), "data": pack(1)})
    seeds["short-sign"] = pack({"arrpc.sign": mac[:63], "data": pack(1)})
    seeds["data-as-str"] = pack({"arrpc.sign": mac, "data": "\x01"})
    seeds["sign-as-bin"] = pack({"arrpc.sign": mac.encode(), "data": pack(1)})
    seeds["keys-reversed"] = pack({"data": pack(1), "arrpc.sign": mac})
    seeds["three-keys"] = pack({"arrpc.sign": mac, "data": pack(1), "x": 0})
    seeds["dup-sign-key"] = b"\x82" + pack("arrpc.sign") + pack(mac) + pack("arrpc.sign") + pack(mac)
    seeds["one-key"] = pack({"arrpc.sign": mac})
    return seeds


def client_corpus(msgs):
    """fuzz_client_reply: [due | limit << 4][read size - 1] + the server's bytes."""
    seeds = {}
    replies = {
        "ok": pack("ok"), "nil": pack(None), "rpc-error": pack(RPC + "no such key: k1"),
        "auth-error": pack(AUTH + "Invalid or missing message signature"),
        "rpc-prefix-only": pack(RPC), "rpc-prefix-as-bin": pack(RPC.encode() + b"x"),
        "prefix-later": pack("see " + RPC), "map": msgs["map-mixed"], "big": msgs["bin16"],
    }
    for i, (name, r) in enumerate(sorted(replies.items())):
        seeds[name] = bytes([0x30, i * 7 % 256]) + r
    batch = pack("a") + pack(RPC + "x") + pack([1, 2]) + pack(AUTH + "y")
    seeds["batch-of-4"] = b"\x33\x02" + batch
    seeds["batch-extra-bytes"] = b"\x31\x00" + batch
    seeds["batch-truncated"] = b"\x33\x10" + batch[:-3]
    seeds["bad-byte"] = b"\x31\x00" + pack(1) + b"\xc1"
    seeds["over-limit"] = b"\x00\x40" + pack("a" * 40)  # limit 16 bytes
    seeds["too-deep"] = b"\x30\x40" + msgs["nested-33"]
    seeds["huge-header"] = b"\x30\x00" + RAW["huge-str"]
    return seeds


def json_corpus(msgs):
    """fuzz_json: JSON text, or 0x00 + MessagePack."""
    texts = {
        "null": None, "bool": [True, False], "ints": [0, -1, 127, 128, -33, 2**63 - 1, -2**63],
        "reals": [1.5, -0.25, 1e300, 5e-324], "string": "h\u00e9llo \u2603 \U0001f600",
        "nul-in-string": "nul\u0000inside", "request": {"echo": "hello"},
        "nested": {"a": [1, [2, [3, {"b": []}]]], "c": {}},
        "bin": {"$bin": "AAECAw=="}, "bin-empty": {"$bin": ""}, "ext": {"$ext": [5, "AQI="]},
        "ext-negative": {"$ext": [-128, ""]}, "map-int-keys": {"$map": [[1, "one"], [None, 2]]},
        "map-str-keys": {"$map": [["a", 1]]}, "map-literal-tag": {"$map": [["$bin", "AAAA"]]},
        "tag-with-others": {"$bin": "AAAA", "x": 1}, "bad-base64": {"$bin": "A"},
        "bad-ext": {"$ext": [300, ""]}, "bad-map": {"$map": [[1]]}, "deep": nested(40),
    }
    seeds = {name: json.dumps(v, ensure_ascii=False).encode() for name, v in texts.items()}
    seeds["base64-noncanonical"] = b'{"$bin": "AB=="}'
    seeds["dup-keys-json"] = b'{"a": 1, "a": 2}'
    seeds["not-json"] = b"{'a': 1}"
    seeds["big-int"] = b"18446744073709551615"
    seeds["u64-nested"] = b'[9223372036854775808, {"k": 18446744073709551615, "s": "1\\"99"}]'
    seeds["int-out-of-range"] = b"[18446744073709551616, -9223372036854775809]"
    seeds["u64-tag"] = b'{"$u64": "18446744073709551615"}'
    seeds["reals-short"] = b"[0.1, 1.0, -0.0, 0.30000000000000004, 1e-7]"
    chain = b"\xc0"  # {"": 1, "": {...}} 20 deep: once took 2^20 conversions (docs/testing.md)
    for _ in range(20):
        chain = b"\x82\xa0\x01\xa0" + chain
    seeds["mp-repeated-keys-chain"] = b"\x00" + chain
    for name in ("uint64", "float32", "nan", "ext8", "fixext16", "int-keys", "dup-keys",
                 "invalid-utf8-str", "tag-key-map", "map-mixed", "bin8", "nested-32"):
        seeds["mp-" + name] = b"\x00" + msgs[name]
    return seeds


V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(ver_cmd, fam_proto, body):
    return V2_SIG + struct.pack("!BBH", ver_cmd, fam_proto, len(body)) + body


def proxy_corpus(msgs):
    """fuzz_proxy: [split] + the first bytes of a connection (a PROXY header, then a request)."""
    inet = bytes([192, 0, 2, 7, 198, 51, 100, 1]) + struct.pack("!HH", 4242, 9000)
    inet6 = bytes(15) + b"\x07" + bytes(15) + b"\x01" + struct.pack("!HH", 4242, 9000)
    tlvs = b"\x05\x00\x03abc" + b"\x04\x00\x00" + b"\x20\x00\x05\x01\x00\x00\x00\x00"
    headers = {
        "v1-tcp4": b"PROXY TCP4 192.0.2.7 198.51.100.1 4242 9000\r\n",
        "v1-tcp6": b"PROXY TCP6 2001:db8::7 2001:db8::1 4242 9000\r\n",
        "v1-unknown": b"PROXY UNKNOWN\r\n",
        "v1-unknown-more": b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
        "v1-longest": b"PROXY TCP6 " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n",
        "v1-bad-port": b"PROXY TCP4 192.0.2.7 198.51.100.1 65536 9000\r\n",
        "v1-cut": b"PROXY TCP4 192.0.2",
        "v2-inet": proxy_v2(0x21, 0x11, inet),
        "v2-inet6": proxy_v2(0x21, 0x21, inet6),
        "v2-inet-tlvs": proxy_v2(0x21, 0x11, inet + tlvs),
        "v2-local": proxy_v2(0x20, 0x00, b""),
        "v2-unspec": proxy_v2(0x21, 0x00, b""),
        "v2-unix": proxy_v2(0x21, 0x31, bytes(216)),
        "v2-dgram": proxy_v2(0x21, 0x12, inet),
        "v2-long": V2_SIG + b"\x21\x11\x04\x00",
        "no-header": msgs["request"] if "request" in msgs else b"\x81\xa1x\x01",
    }
    seeds = {}
    for name, h in headers.items():
        seeds[name] = bytes([len(h) // 2]) + h + b"\x81\xa1x\x01"
    return seeds


def decode_corpus(msgs):
    """fuzz_decode_diff: [limits] + one message. 0xff: 1 MiB and a depth limit of 64."""
    seeds = {name: b"\xff" + m for name, m in msgs.items()}
    seeds.update({
        "nested-64": b"\xff" + pack(nested(64)), "nested-65": b"\xff" + pack(nested(65)),
        "map-nested-40": b"\xff" + b"\x81\xc0" * 40 + b"\xc0",
        "timestamp32": b"\xff\xd6\xff\x5f\x5e\x10\x00",
        "timestamp64": b"\xff\xd7\xff" + bytes(4) + b"\x5f\x5e\x10\x00",
        "timestamp96": b"\xff\xc7\x0c\xff" + bytes(4) + b"\x00" * 7 + b"\x01",
        "int-widths": b"\xff" + b"\x94\xd0\x01\xd1\xff\xff\xd2\x00\x00\x00\x05\xd3" + b"\xff" * 8,
        "float32-nan": b"\xff\xca\x7f\xc0\x00\x01",
        "at-size-limit": b"\x00" + pack("1234567"), "over-size-limit": b"\x00" + pack("12345678"),
        "at-depth-limit": b"\x07" + pack(nested(2)), "over-depth-limit": b"\x07" + pack(nested(3)),
        "lying-array": b"\xff\xdd\x00\x01\x00\x00\x01\x02",
    })
    return seeds


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    wanted = set()
    for seed, data in seeds.items():
        wanted.add(seed)
        with open(os.path.join(d, seed), "wb") as f:
            f.write(data)
    for old in os.listdir(d):
        if old not in wanted:
            os.unlink(os.path.join(d, old))
    print("%s: %d seeds, %d bytes" % (name, len(seeds), sum(map(len, seeds.values()))))


def main():
    msgs = messages()
    write("fuzz_scan", scan_corpus(msgs))
    write("fuzz_auth", auth_corpus(msgs))
    write("fuzz_client_reply", client_corpus(msgs))
    write("fuzz_json", json_corpus(msgs))
    write("fuzz_proxy", proxy_corpus(msgs))
    write("fuzz_decode_diff", decode_corpus(msgs))


if __name__ == "__main__":
    main()
