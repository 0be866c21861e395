"""Building checkpoints by hand for the fault tests: take a real checkpoint's dict, change it, and
write it back with a *valid* checksum, so the trainer's layout checks (not the checksum) must catch
the problem. The checksum is XXH64 as in src/checkpoint/checkpoint_file.cpp, in plain Python."""
import io
import struct
import zipfile

import torch

M = (1 << 64) - 1
P1, P2, P3, P4, P5 = (11400714785074694791, 14029467366897019727, 1609587929392839161, 9650029242287828579,
                      2870177450012600261)
SEED = 0x726573756D61626C  # "resumabl"


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def _round(acc, lane):
    return (_rotl((acc + lane * P2) & M, 31) * P1) & M


def _merge(h, v):
    return (((h ^ _round(0, v)) * P1) + P4) & M


def xxh64(data: bytes, seed: int = 0) -> int:
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = _round(v[k], struct.unpack_from("<Q", data, i + 8 * k)[0])
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M
        for k in range(4):
            h = _merge(h, v[k])
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = ((_rotl(h ^ _round(0, struct.unpack_from("<Q", data, i)[0]), 27) * P1) + P4) & M
        i += 8
    if i + 4 <= n:
        h = ((_rotl(h ^ ((struct.unpack_from("<I", data, i)[0] * P1) & M), 23) * P2) + P3) & M
        i += 4
    while i < n:
        h = (_rotl(h ^ ((data[i] * P5) & M), 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


def checksum(records: dict) -> str:
    """records: name (without the archive prefix) -> bytes, for data.pkl and data/*."""
    buf = bytearray()
    for name in sorted(records):
        data = records[name]
        buf += struct.pack("<Q", len(name)) + name.encode() + struct.pack("<Q", len(data)) + data
    return "xxh64:%016x" % xxh64(bytes(buf), SEED)


def save_with_checksum(obj, path, algorithm="xxh64"):
    """torch.save(obj) plus the checksum record this trainer requires (XXH64, which it reads
    besides its own XXH3; another algorithm name keeps the XXH64 digest under that name)."""
    raw = io.BytesIO()
    torch.save(obj, raw)
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as z:
        prefix = z.namelist()[0].split("/")[0] + "/"
        records = {n[len(prefix):]: z.read(n) for n in z.namelist()
                   if n[len(prefix):] == "data.pkl" or n[len(prefix):].startswith("data/")}
    out = io.BytesIO(raw.getvalue())
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "checksum", checksum(records).replace("xxh64:", algorithm + ":"))
    with open(path, "wb") as f:
        f.write(out.getvalue())
