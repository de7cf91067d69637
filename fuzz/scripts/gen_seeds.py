#!/usr/bin/env python3
"""Writes the seed corpora of the `receiver_session`, `api_request` and `path_mapping` fuzz
targets into fuzz/corpus/<target>/ (a handful of small files each; deterministic).

Usage (from anywhere): python3 fuzz/scripts/gen_seeds.py
The input formats are described at the top of each fuzz_targets/<target>.rs.
"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < 64 * 1024
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# receiver_session: 3 size bytes (x37 bytes each), then opcodes (see `step`):
# 0 time(u16 ms) 1 HELLO 2 manifest(off u16, len*8) 3 file(idx, off u16, len*8)
# 4 digests(off, len, fill) 5 frames(len*4, bytes) 6 raw(len u16, bytes) 7 forged(id 8 bytes)
# 8 pn jump(b) 9 storage_ready(k, [off u16, len]*k, complete) 10 file_done(ok) 11 CLOSE(code)
def u16(v):
    return struct.pack("<H", v)


HELLO = b"\x01"
MANIFEST_ALL = b"\x02" + u16(0) + b"\xff"
TICK = b"\x00" + u16(30)


def files(sizes):
    out = b""
    for i, s in enumerate(sizes):
        n = s * 37
        off = 0
        while off < n:
            out += b"\x03" + bytes([i]) + u16(off) + b"\x40"  # 512 bytes per frame
            off += 512
    return out


def digests(count):
    return b"\x04\x00" + bytes([min(64, count * 32)]) + b"\x5a"


full = (bytes([3, 20, 0]) + HELLO + MANIFEST_ALL + TICK + b"\x09\x00\x00"
        + files([3, 20, 0]) + digests(3) + b"\x0a\x00\x0a\x01\x0a\x00" + TICK * 3)
seeds = {
    "hello_only.bin": bytes([1, 1, 1]) + HELLO + TICK,
    "manifest.bin": bytes([2, 0, 5]) + HELLO + MANIFEST_ALL + TICK,
    "manifest_in_pieces.bin": bytes([2, 2, 2]) + HELLO + b"".join(
        b"\x02" + u16(o) + b"\x02" for o in range(0, 200, 16)) + TICK,
    "full_transfer.bin": full,
    "resume_held.bin": bytes([9, 9, 9]) + HELLO + MANIFEST_ALL + b"\x09\x02" + u16(0)
    + b"\x40" + u16(100) + b"\x10\x01" + files([9, 9, 9]) + digests(3),
    "replay_and_reorder.bin": bytes([4, 4, 0]) + HELLO + MANIFEST_ALL + b"\x08\x02"
    + MANIFEST_ALL + b"\x08\x07" + HELLO + TICK,
    "forged_ids.bin": bytes([1, 2, 3]) + b"\x07" + bytes(8) + b"\x07" + b"\xff" * 8
    + HELLO + b"\x07\x01\x23\x45\x67\x89\xab\xcd\xee",
    "junk_datagrams.bin": bytes([1, 0, 0]) + b"\x06" + u16(17) + bytes(17)
    + b"\x06" + u16(40) + b"\x01\x01" + b"\x01\x23\x45\x67\x89\xab\xcd\xef"[::-1] + bytes(30),
    "raw_frames.bin": bytes([1, 1, 1]) + HELLO + b"\x05\x02\x01\x00\x00\x00\x05\x01\x08\x00",
    "close_and_drain.bin": bytes([2, 2, 2]) + HELLO + b"\x0b\x07" + TICK * 5
    + b"\x00" + u16(60000),
    "idle_timeout.bin": bytes([2, 2, 2]) + HELLO + b"\x00" + u16(65535) * 1 + b"\x00" + u16(65535),
    "hello_changed.bin": bytes([2, 2, 2]) + HELLO + b"\x05\x0c\x02" + bytes(47),
}
for name, data in seeds.items():
    write("receiver_session", name, data)

# api_request: first byte = reader buffer size, then request lines.
ID32 = "0123456789abcdef0123456789ABCDEF"
lines = {
    "get_server_info.bin": [{"request": "getServerInfo", "id": 1}],
    "auth.bin": [{"request": "auth", "parameters": {"userName": "bob", "password": "pw"}}],
    "create_manifest_object.bin": [{"request": "send.createManifest",
                                    "parameters": {"fileMappings": {"/src/a": "/dst/a"}}}],
    "create_manifest_pairs.bin": [{"request": "send.createManifest",
                                   "parameters": {"fileMappings": [["/a", "../b"], ["c", "d"]]}}],
    "create_manifest_objects.bin": [{"request": "send.createManifestAsync", "parameters": {
        "fileMappings": [{"srcPath": "/x", "destPath": "y/../z"}]}}],
    "bandwidth.bin": [{"request": "updateBandwidthLimits",
                       "parameters": {"incomingMaxConnections": 4}}],
    "gc.bin": [{"request": "updateGarbageCollectSettings",
                "parameters": {"intervalSeconds": "10", "timeLimitSeconds": 0}}],
    "token.bin": [{"request": "createAPIToken", "parameters": {
        "expirySeconds": 60, "path": "/in/../x", "permissions": ["send.createTransfer"]}}],
    "transfer.bin": [{"request": "send.createTransfer", "parameters": {
        "destinationId": ID32, "manifestId": ID32, "destinationPath": "/../x",
        "cipher": "aes-256-gcm"}, "id": "abc"}],
    "ids.bin": [{"request": "send.getTransfer", "parameters": {"transferId": 12345}},
                {"request": "getRequestStatus", "parameters": {"requestId": "-1"}}],
    "shared.bin": [{"request": "send.createSharedToken",
                    "parameters": {"manifestId": ID32, "expiryTime": 1}}],
    "unknown_and_bad.bin": [{"request": "nope"}, {"request": 5}, {"parameters": []},
                            {"request": "echo", "parameters": [1, 2]}],
}
for name, reqs in lines.items():
    body = "\r\n".join(json.dumps(r) for r in reqs) + "\n"
    write("api_request", name, bytes([7]) + body.encode())
write("api_request", "malformed.bin", bytes([1]) + b'{"request":\n\n   \n{]}\n\xff\xfe\n{"request":"echo"')

# path_mapping: template 0xFF user 0xFF destinationPath 0xFF target 0xFF manifest path.
paths = {
    "plain.bin": ["/storage/%u", "bob", "/repo", "/mnt/data/file.bin", "a/b.bin"],
    "escape_dest.bin": ["/storage/%u", "bob", "../..", "x", "../etc/passwd"],
    "escape_target.bin": ["/s/%d/%u", "dom\\bob", "repo", "a/../../b", "a/./b"],
    "dots_user.bin": ["/storage/.%u", ".", "/", "..", "a//b"],
    "percent.bin": ["/s/%%u/%f", "a@b.c", "./x/./", "/y/", "\\..\\x"],
    "nul.bin": ["/s/%u", "b\x00b", "a\x00", "b", "c\x00d"],
    "long.bin": ["/s", "u", "d", "t", "/".join(["x" * 255] * 3)],
    "relative_template.bin": ["storage/%u", "bob", "", "", "."],
}
for name, fields in paths.items():
    write("path_mapping", name, b"\xff".join(f.encode() for f in fields))
