#!/usr/bin/env python3
"""Edits a GGUF file in place, for sensitivity checks (scripts/llamacpp/arch_check.sh):
deliberately wrong settings that must move llama.cpp's perplexity.

Usage:
  gguf_patch.py FILE set KEY VALUE          scalar metadata value (its stored type kept)
  gguf_patch.py FILE rename-arch NEW        general.architecture and every "OLD." key prefix
                                            become NEW (same length as OLD: the file keeps its layout)
  gguf_patch.py FILE scale-tensor NAME F    multiplies an F32 tensor by F (0 drops it in effect)
  gguf_patch.py FILE get KEY                prints a scalar or string value

Pure Python (no numpy): reads the GGUF v2/v3 header itself.
"""
import array
import struct
import sys

SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9
GGML_F32 = 0


class Gguf:
    def __init__(self, data):
        self.data = data
        self.pos = 0
        if data[:4] != b"GGUF":
            sys.exit("not a GGUF file")
        self.pos = 4
        version = self.u32()
        if version not in (2, 3):
            sys.exit(f"unsupported GGUF version {version}")
        n_tensors, n_kv = self.u64(), self.u64()
        self.kv = {}  # key -> (key_offset, type, value_offset, value)
        for _ in range(n_kv):
            key_off = self.pos
            key = self.string()
            typ = self.u32()
            val_off = self.pos
            self.kv[key] = (key_off, typ, val_off, self.value(typ))
        self.tensors = {}  # name -> (dims, type, offset)
        for _ in range(n_tensors):
            name = self.string()
            dims = [self.u64() for _ in range(self.u32())]
            typ = self.u32()
            self.tensors[name] = (dims, typ, self.u64())
        align = self.kv.get("general.alignment", (0, 4, 0, 32))[3]
        self.data_start = (self.pos + align - 1) // align * align

    def unpack(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize("<" + fmt)
        return v

    def u32(self):
        return self.unpack("I")

    def u64(self):
        return self.unpack("Q")

    def string(self):
        n = self.u64()
        s = bytes(self.data[self.pos:self.pos + n]).decode("utf-8", "replace")
        self.pos += n
        return s

    def value(self, typ):
        if typ in SCALAR:
            return self.unpack(SCALAR[typ])
        if typ == STRING:
            return self.string()
        if typ == ARRAY:
            elem, n = self.u32(), self.u64()
            if elem in SCALAR:
                self.pos += n * struct.calcsize("<" + SCALAR[elem])
            else:
                for _ in range(n):
                    self.value(elem)
            return None
        sys.exit(f"unknown GGUF value type {typ}")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, op = sys.argv[1], sys.argv[2]
    with open(path, "r+b") as f:
        data = bytearray(f.read())
    g = Gguf(data)
    if op == "get":
        key = sys.argv[3]
        if key not in g.kv:
            sys.exit(f"no key {key}")
        print(g.kv[key][3])
        return
    if op == "set":
        key, text = sys.argv[3], sys.argv[4]
        if key not in g.kv:
            sys.exit(f"no key {key}")
        _, typ, off, old = g.kv[key]
        if typ not in SCALAR:
            sys.exit(f"{key} is not a scalar")
        fmt = SCALAR[typ]
        new = float(text) if fmt in "fd" else (text.lower() in ("1", "true") if fmt == "?" else int(text))
        struct.pack_into("<" + fmt, data, off, new)
        print(f"{key}: {old} -> {new}")
    elif op == "rename-arch":
        new = sys.argv[3]
        _, _, off, old = g.kv["general.architecture"]
        if len(new.encode()) != len(old.encode()):
            sys.exit(f"rename-arch: '{new}' must have as many bytes as '{old}'")
        data[off + 8:off + 8 + len(old)] = new.encode()
        n = 0
        for key, (key_off, _, _, _) in g.kv.items():
            if key.startswith(old + "."):
                data[key_off + 8:key_off + 8 + len(old)] = new.encode()
                n += 1
        print(f"general.architecture: {old} -> {new} ({n} keys renamed)")
    elif op == "scale-tensor":
        name, factor = sys.argv[3], float(sys.argv[4])
        if name not in g.tensors:
            sys.exit(f"no tensor {name}")
        dims, typ, off = g.tensors[name]
        if typ != GGML_F32:
            sys.exit(f"{name} is not F32")
        n = 1
        for d in dims:
            n *= d
        begin = g.data_start + off
        values = array.array("f")
        values.frombytes(bytes(data[begin:begin + 4 * n]))
        if sys.byteorder != "little":
            values.byteswap()
        values = array.array("f", (v * factor for v in values))
        if sys.byteorder != "little":
            values.byteswap()
        data[begin:begin + 4 * n] = values.tobytes()
        print(f"{name}: x{factor} ({n} values)")
    else:
        sys.exit(f"unknown operation {op}\n" + __doc__)
    with open(path, "r+b") as f:
        f.write(data)


if __name__ == "__main__":
    main()
