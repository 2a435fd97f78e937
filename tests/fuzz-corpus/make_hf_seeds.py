#!/usr/bin/env python3
"""Writes the seed corpora of the Hugging Face fuzz targets (core/fuzz/fuzz_safetensors_header.cpp,
fuzz_hf_config.cpp, fuzz_hf_index.cpp) into safetensors_header/, hf_config/ and hf_index/ beside this script.

Seeds named valid-* must parse and invalid-* must be rejected with qs::core::Error;
tests/core/tst_fuzzreplay_hf.cpp replays them all. Every seed is made up here (no test data is copied)
and stays under 8 KB. Run it again after changing a seed; the output is deterministic."""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def out(target, name, data):
    folder = os.path.join(HERE, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    assert len(data) < 8192, name
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def st_file(header, data=b"", align=8):
    """8-byte little-endian length, header text padded with spaces, data."""
    if not isinstance(header, bytes):
        header = json.dumps(header, separators=(",", ":")).encode("utf-8")
    while len(header) % align:
        header += b" "
    return struct.pack("<Q", len(header)) + header + data


def st_tensors(tensors, align=8, metadata=None):
    """tensors: list of (name, dtype, shape, bytes), stored back to back in that order."""
    header = {"__metadata__": metadata or {"format": "pt"}}
    data = b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return st_file(header, data, align)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def ramp(n, scale=0.01):
    return f32(*[scale * (i - n / 2) for i in range(n)])


def bf16(*values):
    return b"".join(struct.pack("<f", v)[2:] for v in values)


def f16(*values):
    return struct.pack("<%de" % len(values), *values)


# ---- safetensors headers ------------------------------------------------------------------------------
S = "safetensors_header"
out(S, "valid-two-tensors.safetensors",
    st_tensors([("a", "F32", [2, 2], f32(1, -2, 3.5, 0)), ("b", "BF16", [3], bf16(1, 2, -0.5))]))
out(S, "valid-empty.safetensors", st_file({}))
out(S, "valid-scalar-and-empty.safetensors",
    st_tensors([("s", "F32", [], f32(7)), ("z", "F16", [0, 4], b""), ("h", "F16", [2, 2], f16(1, 2, 3, 4))]))
out(S, "valid-unpadded-odd-offsets.safetensors",
    st_tensors([("u8", "U8", [3], b"abc"), ("w", "F32", [1, 3], f32(1, 2, 3)), ("v", "BF16", [2, 1], bf16(4, 5))],
               align=1, metadata={"format": "pt", "note": "unaligned"}))
out(S, "valid-other-dtypes.safetensors",
    st_tensors([("i", "I32", [2], struct.pack("<2i", -1, 2)), ("q", "F4", [4], b"\x12\x34"),
                ("e", "F8_E4M3", [2], b"\x38\x40"), ("c", "C64", [1], f32(1, 2)), ("b", "BOOL", [2], b"\x00\x01")]))
# A whole tiny llama (hidden 4, 1 layer, vocab 8) in the canonical Hugging Face names.
H, I, V = 4, 8, 8
llama = [("model.embed_tokens.weight", "F32", [V, H], ramp(V * H)), ("lm_head.weight", "F32", [V, H], ramp(V * H, 0.02)),
         ("model.norm.weight", "F32", [H], ramp(H))]
for mod, shape in [("input_layernorm", [H]), ("post_attention_layernorm", [H]), ("self_attn.q_proj", [H, H]),
                   ("self_attn.k_proj", [H, H]), ("self_attn.v_proj", [H, H]), ("self_attn.o_proj", [H, H]),
                   ("mlp.gate_proj", [I, H]), ("mlp.up_proj", [I, H]), ("mlp.down_proj", [H, I])]:
    n = shape[0] * (shape[1] if len(shape) > 1 else 1)
    llama.append(("model.layers.0.%s.weight" % mod, "F32", shape, ramp(n)))
out(S, "valid-tiny-llama.safetensors", st_tensors(llama))

two = st_tensors([("a", "F32", [2], f32(1, 2)), ("b", "F32", [2], f32(3, 4))])
out(S, "invalid-short.safetensors", b"\x02\x00\x00\x00\x00")
out(S, "invalid-truncated.safetensors", two[:-3])
out(S, "invalid-trailing-byte.safetensors", two + b"\x00")
out(S, "invalid-header-too-large.safetensors", struct.pack("<Q", 100000001) + b"{}")
out(S, "invalid-header-past-end.safetensors", struct.pack("<Q", 64) + b"{}")
out(S, "invalid-header-length-max.safetensors", b"\xff" * 8 + b"{}")
out(S, "invalid-not-utf8.safetensors", st_file(b'{"a\xff":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)))
out(S, "invalid-bad-json.safetensors", st_file(b'{"a":{"dtype":"F32","shape":[1],', f32(1)))
out(S, "invalid-nul-in-header.safetensors", st_file(b'{}\x00{"a":1}', b"", align=1))
out(S, "invalid-metadata-number.safetensors", st_file({"__metadata__": {"format": 1}}))
out(S, "invalid-unknown-dtype.safetensors", st_file({"a": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, f32(1)))
out(S, "invalid-size-mismatch.safetensors", st_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, f32(1)))
out(S, "invalid-overlap.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32(1, 2, 3)))
out(S, "invalid-gap.safetensors",
    st_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}, f32(1, 2, 3)))
out(S, "invalid-not-from-zero.safetensors", st_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, f32(1, 2)))
out(S, "invalid-end-before-begin.safetensors", st_file({"a": {"dtype": "F32", "shape": [0], "data_offsets": [4, 0]}}, f32(1)))
out(S, "invalid-numel-overflow.safetensors",
    st_file(b'{"a":{"dtype":"U8","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,4]}}', f32(1)))
out(S, "invalid-huge-offset.safetensors",
    st_file(b'{"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,18446744073709551615]}}', f32(1)))
out(S, "invalid-negative-shape.safetensors", st_file(b'{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', f32(1)))
out(S, "invalid-duplicate-name.safetensors",
    st_file(b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy"))
out(S, "invalid-misaligned-f4.safetensors", st_file({"a": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, b"xy"))

# ---- config.json ----------------------------------------------------------------------------------------
C = "hf_config"
base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
        "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}


def cfg(**changes):
    c = dict(base)
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return json.dumps(c, indent=2)


out(C, "valid-llama.json", cfg())
out(C, "valid-minimal.json", json.dumps({"model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
                                         "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 10}))
out(C, "valid-mistral.json", cfg(model_type="mistral", architectures=["MistralForCausalLM"], sliding_window=4096))
out(C, "valid-qwen2.json", cfg(model_type="qwen2", architectures=["Qwen2ForCausalLM"], bos_token_id=151643,
                                eos_token_id=151645, vocab_size=151936, use_sliding_window=False, rope_theta=1000000.0,
                                tie_word_embeddings=True))
out(C, "valid-llama31-rope.json", cfg(eos_token_id=[128001, 128008, 128009], rope_theta=500000.0,
                                       rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                     "high_freq_factor": 4.0,
                                                     "original_max_position_embeddings": 8192}))
out(C, "valid-old-rope-type-key.json", cfg(rope_scaling={"type": "linear", "factor": 2.0}))
out(C, "valid-v5-rope-parameters.json", cfg(rope_theta=None, torch_dtype=None, dtype="bfloat16",
                                             rope_parameters={"rope_type": "yarn", "rope_theta": 1000000.0,
                                                              "factor": 4.0, "beta_fast": 32, "beta_slow": 1}))
out(C, "valid-v5-per-layer-rope.json", cfg(rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                                             "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}))
out(C, "valid-nulls.json", cfg(num_key_value_heads=None, head_dim=None, rope_scaling=None) .replace(
    '"vocab_size": 512', '"vocab_size": 512, "head_dim": null, "rope_scaling": null, "num_key_value_heads": null'))
out(C, "valid-synthetic.json", cfg(quantscope_synthetic=True))
out(C, "invalid-nan.json", cfg().replace("1e-05", "NaN"))
out(C, "invalid-infinity.json", cfg().replace("10000.0", "Infinity"))
out(C, "invalid-truncated.json", cfg()[:100])
out(C, "invalid-not-object.json", "[1, 2, 3]")
out(C, "invalid-empty.json", "")
out(C, "invalid-gpt2.json", json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 768}))
out(C, "invalid-missing-hidden.json", cfg(hidden_size=None))
out(C, "invalid-string-number.json", cfg(num_hidden_layers="5"))
out(C, "invalid-kv-heads.json", cfg(num_key_value_heads=3))
out(C, "invalid-rope-type.json", cfg(rope_scaling={"rope_type": "mrope", "factor": 2}))
out(C, "invalid-llama3-incomplete.json", cfg(rope_scaling={"rope_type": "llama3", "factor": 8}))
out(C, "invalid-quantized.json", cfg(quantization_config={"quant_method": "gptq", "bits": 4, "group_size": 128}))
out(C, "invalid-huge-dims.json", cfg(hidden_size=18446744073709551615))
out(C, "invalid-negative-eps.json", cfg(rms_norm_eps=-1e-6))

# ---- model.safetensors.index.json -------------------------------------------------------------------------
X = "hf_index"
out(X, "valid-two-shards.json", json.dumps({"metadata": {"total_size": 585600},
                                            "weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors",
                                                           "model.norm.weight": "model-00002-of-00002.safetensors"}},
                                           indent=2))
out(X, "valid-extra-metadata.json", json.dumps({"metadata": {"total_size": 8, "total_parameters": 2},
                                                "weight_map": {"a": "s.safetensors"}}))
out(X, "invalid-no-weight-map.json", json.dumps({"metadata": {"total_size": 8}}))
out(X, "invalid-empty-weight-map.json", json.dumps({"weight_map": {}}))
out(X, "invalid-non-string-shard.json", json.dumps({"weight_map": {"a": 1}}))
out(X, "invalid-traversal.json", json.dumps({"weight_map": {"a": "../../etc/passwd"}}))
out(X, "invalid-truncated.json", '{"weight_map": {"a": "s.safe')
