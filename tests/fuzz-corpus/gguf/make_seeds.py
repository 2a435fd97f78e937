#!/usr/bin/env python3
"""Writes the GGUF fuzz seed corpus next to this script.

Every seed is synthetic (no bytes from the shared test data) and under 8 KB. Valid seeds cover every
metadata value type, every decodable tensor type and a complete tiny llama model; invalid seeds each
break one rule of formats.md 2.3. tests/core/tst_fuzzreplay_gguf.cpp replays every *.gguf file here;
core/fuzz/fuzz_gguf.cpp starts from them. Run it again after changing it: python3 make_seeds.py
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# metadata value types (formats.md 2.2)
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
          U64: "<Q", I64: "<q", F64: "<d"}
# ggml types: id -> (block size, bytes per block)
GGML = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20), "Q5_0": (6, 32, 22),
        "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q2_K": (10, 256, 84), "Q4_K": (12, 256, 144),
        "Q6_K": (14, 256, 210), "BF16": (30, 1, 2)}


def gguf_string(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def value(vtype, v):
    if vtype == STRING:
        return gguf_string(v)
    if vtype == ARRAY:
        etype, items = v
        out = struct.pack("<IQ", etype, len(items))
        return out + b"".join(value(etype, x) for x in items)
    return struct.pack(SCALAR[vtype], v)


class Gguf:
    def __init__(self, version=3, alignment=32):
        self.version = version
        self.alignment = alignment
        self.kvs = []
        self.tensors = []  # (name, ne, type name, data)

    def kv(self, key, vtype, v):
        self.kvs.append(gguf_string(key) + struct.pack("<I", vtype) + value(vtype, v))

    def tensor(self, name, ne, tname, data):
        self.tensors.append((name, ne, tname, data))

    def pad(self, n):
        return (n + self.alignment - 1) // self.alignment * self.alignment

    def build(self, offsets=None):
        out = b"GGUF" + struct.pack("<IQQ", self.version, len(self.tensors), len(self.kvs)) + b"".join(self.kvs)
        offset = 0
        for i, (name, ne, tname, data) in enumerate(self.tensors):
            out += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
            out += struct.pack("<IQ", GGML[tname][0], offsets[i] if offsets else offset)
            offset += self.pad(len(data))
        if self.tensors:
            out += b"\0" * (self.pad(len(out)) - len(out))
            for _, _, _, data in self.tensors:
                out += data + b"\0" * (self.pad(len(data)) - len(data))
        return out


rng = random.Random(20240601)


def half(x):
    return struct.pack("<e", x)


def tensor_bytes(tname, rows, cols):
    """Random quants with small finite scales in every scale field."""
    _, bs, nbytes = GGML[tname]
    blocks = rows * cols // bs
    out = bytearray()
    for _ in range(blocks):
        if tname == "F32":
            out += struct.pack("<f", rng.uniform(-1, 1))
            continue
        if tname == "F16":
            out += half(rng.uniform(-1, 1))
            continue
        if tname == "BF16":
            out += struct.pack("<f", rng.uniform(-1, 1))[2:]
            continue
        blk = bytearray(rng.getrandbits(8) for _ in range(nbytes))
        scale_fields = {"Q4_1": [0, 2], "Q5_1": [0, 2], "Q4_K": [0, 2], "Q2_K": [80, 82], "Q6_K": [208]}
        for at in scale_fields.get(tname, [0]):
            blk[at:at + 2] = half(rng.uniform(-0.05, 0.05))
        out += blk
    return bytes(out)


def llama_keys(g, hidden, layers, heads, kv_heads, ffn, tokens):
    g.kv("general.architecture", STRING, "llama")
    g.kv("general.name", STRING, "seed")
    g.kv("llama.context_length", U32, 64)
    g.kv("llama.embedding_length", U32, hidden)
    g.kv("llama.block_count", U32, layers)
    g.kv("llama.feed_forward_length", U32, ffn)
    g.kv("llama.attention.head_count", U32, heads)
    g.kv("llama.attention.head_count_kv", U32, kv_heads)
    g.kv("llama.rope.dimension_count", U32, hidden // heads)
    g.kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)
    g.kv("tokenizer.ggml.model", STRING, "llama")
    g.kv("tokenizer.ggml.tokens", ARRAY, (STRING, tokens))
    g.kv("tokenizer.ggml.scores", ARRAY, (F32, [float(-i) for i in range(len(tokens))]))
    g.kv("tokenizer.ggml.token_type", ARRAY, (I32, [2, 3, 3] + [1] * (len(tokens) - 3)))
    g.kv("tokenizer.ggml.bos_token_id", U32, 1)
    g.kv("tokenizer.ggml.eos_token_id", U32, 2)


def tiny_llama():
    """hidden 32, 1 block, 4 heads of 8, 2 kv heads, ffn 32, vocab 8; output tied to the embedding."""
    g = Gguf()
    llama_keys(g, 32, 1, 4, 2, 32, ["<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"])
    for name, ne, tname in [("token_embd.weight", [32, 8], "F16"), ("blk.0.attn_norm.weight", [32], "F32"),
                            ("blk.0.attn_q.weight", [32, 32], "Q8_0"), ("blk.0.attn_k.weight", [32, 16], "Q4_0"),
                            ("blk.0.attn_v.weight", [32, 16], "Q4_1"), ("blk.0.attn_output.weight", [32, 32], "Q5_0"),
                            ("blk.0.ffn_norm.weight", [32], "BF16"), ("blk.0.ffn_gate.weight", [32, 32], "Q5_1"),
                            ("blk.0.ffn_up.weight", [32, 32], "Q4_0"), ("blk.0.ffn_down.weight", [32, 32], "Q8_0"),
                            ("output_norm.weight", [32], "F32")]:
        g.tensor(name, ne, tname, tensor_bytes(tname, ne[1] if len(ne) > 1 else 1, ne[0]))
    return g


def every_type():
    g = Gguf()
    g.kv("general.architecture", STRING, "none")
    for tname in ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q6_K", "Q2_K"]:
        cols = GGML[tname][1] if GGML[tname][1] > 1 else 8
        g.tensor("t." + tname, [cols], tname, tensor_bytes(tname, 1, cols))
    return g


def all_value_types():
    g = Gguf(version=2)
    for i, (vtype, v) in enumerate([(U8, 200), (I8, -3), (U16, 60000), (I16, -300), (U32, 70000), (I32, -70000),
                                    (F32, 0.5), (BOOL, 1), (STRING, "x\u00e9"), (U64, 2 ** 63), (I64, -2 ** 40),
                                    (F64, 0.1)]):
        g.kv("scalar.%d" % i, vtype, v)
        if vtype != STRING:
            g.kv("array.%d" % i, ARRAY, (vtype, [v, v]))
    g.kv("array.string", ARRAY, (STRING, ["a", "", "bc"]))
    g.kv("array.empty", ARRAY, (U8, []))
    g.kv("general.alignment", U32, 64)
    return g


def vocab_only():
    g = Gguf()
    g.kv("general.architecture", STRING, "gpt2")
    g.kv("tokenizer.ggml.model", STRING, "gpt2")
    g.kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a", "b", "ab", "\u0120a", "<|endoftext|>"]))
    g.kv("tokenizer.ggml.token_type", ARRAY, (I32, [1, 1, 1, 1, 3]))
    g.kv("tokenizer.ggml.merges", ARRAY, (STRING, ["a b", "\u0120 a"]))
    g.kv("tokenizer.ggml.bos_token_id", U32, 4)
    g.kv("tokenizer.ggml.eos_token_id", U32, 4)
    return g


def stories_like_infos():
    """The metadata keys and tensor infos of a stories260K-shaped model (dim 64, 5 blocks, 8 heads, 4 kv
    heads, ffn 172) with a 4-token vocabulary, and no tensor data: data beyond the end of the file."""
    g = Gguf()
    llama_keys(g, 64, 5, 8, 4, 172, ["<unk>", "<s>", "</s>", "x"])
    names = [("token_embd.weight", [64, 4]), ("output_norm.weight", [64]), ("output.weight", [64, 4])]
    for b in range(5):
        p = "blk.%d." % b
        names += [(p + "attn_q.weight", [64, 64]), (p + "attn_k.weight", [64, 32]), (p + "attn_v.weight", [64, 32]),
                  (p + "attn_output.weight", [64, 64]), (p + "attn_norm.weight", [64]),
                  (p + "ffn_gate.weight", [64, 172]), (p + "ffn_down.weight", [172, 64]),
                  (p + "ffn_up.weight", [64, 172]), (p + "ffn_norm.weight", [64])]
    for name, ne in names:
        g.tensor(name, ne, "F32", b"")
    # Rewrite the offsets as if each tensor had its F32 bytes, then drop the (empty) data section.
    g2 = Gguf()
    g2.kvs = g.kvs
    offsets, offset = [], 0
    for name, ne in names:
        g2.tensor(name, ne, "F32", b"")
        offsets.append(offset)
        n = 4
        for d in ne:
            n *= d
        offset += g2.pad(n)
    return g2.build(offsets)


def write(name, data):
    assert len(data) < 8192, (name, len(data))
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def main():
    tiny = tiny_llama().build()
    write("valid-tiny-llama.gguf", tiny)
    write("valid-every-type.gguf", every_type().build())
    write("valid-all-value-types-v2.gguf", all_value_types().build())
    write("valid-vocab-only.gguf", vocab_only().build())
    write("valid-empty.gguf", Gguf().build())
    write("invalid-stories-infos-without-data.gguf", stories_like_infos())
    write("invalid-truncated-tiny-llama.gguf", tiny[: len(tiny) // 2])
    write("invalid-version-1.gguf", b"GGUF" + struct.pack("<III", 1, 0, 0))

    def patched(image, at, fmt, v):
        b = bytearray(image)
        struct.pack_into(fmt, b, at, v)
        return bytes(b)

    write("invalid-huge-kv-count.gguf", patched(tiny, 16, "<Q", 2 ** 62))
    first_value_type = 24 + 8 + len("general.architecture")
    write("invalid-unknown-value-type.gguf", patched(tiny, first_value_type, "<I", 13))

    g = Gguf()
    g.kvs.append(gguf_string("nested") + struct.pack("<IIQ", ARRAY, ARRAY, 1) + struct.pack("<IQ", U8, 0))
    write("invalid-nested-array.gguf", g.build())

    g = every_type()
    image = g.build()
    name = gguf_string("t.F16")
    at = image.index(name) + len(name)
    write("invalid-unknown-ggml-type.gguf", patched(image, at + 4 + 8, "<I", 99))
    write("invalid-misaligned-offset.gguf", patched(image, at + 4 + 8 + 4, "<Q", 36))
    write("invalid-overlap.gguf", patched(image, at + 4 + 8 + 4, "<Q", 0))
    write("invalid-ndims-5.gguf", patched(image, at, "<I", 5))
    name = gguf_string("t.Q4_K")
    at = image.index(name) + len(name)
    write("invalid-ne0-not-block-multiple.gguf", patched(image, at + 4, "<Q", 255))


if __name__ == "__main__":
    main()
