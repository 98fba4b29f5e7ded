"""A GGUF file's metadata and raw tensor table (name, dims innermost-first, ggml type id, data bytes), read with the
standard library only, for tests that compare files byte for byte."""
import struct

SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
# ggml type id -> (values per block, bytes per block)
BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
          10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
          20: (32, 18), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2)}
NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0", 10: "q2_K", 11: "q3_K", 12: "q4_K",
         13: "q5_K", 14: "q6_K", 20: "iq4_nl", 23: "iq4_xs", 30: "bf16"}


def read(path):
    with open(path, "rb") as f:
        buf = f.read()
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, buf, off)
        off += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal off
        n = take("Q")
        s = buf[off:off + n].decode("utf-8")
        off += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(SCALARS[t])

    assert buf[:4] == b"GGUF", path
    off = 4
    take("I")
    n_t, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    infos = []
    for _ in range(n_t):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        typ, o = take("I"), take("Q")
        infos.append((name, ne, typ, o))
    align = meta.get("general.alignment", 32)
    base = (off + align - 1) // align * align
    tensors = []
    for name, ne, typ, o in infos:
        be, bb = BLOCKS[typ]
        rows = 1
        for d in ne[1:]:
            rows *= d
        size = rows * (ne[0] // be) * bb
        tensors.append((name, ne, typ, buf[base + o: base + o + size]))
    return meta, tensors
