#!/usr/bin/env python3
"""An independent safetensors writer for tests/test_safetensors.c: only struct and json.

usage: hf_writer.py LLMC_CKPT OUT_DIR DTYPE [ROUNDED_LLMC|-] [--n-head-meta]

Reads an llm.c GPT-2 checkpoint (int32 header[256] = {20240326, 3, maxT, V, L, NH, C, Vp},
then float32 parameters in llm.c's order) and writes OUT_DIR/config.json and
OUT_DIR/model.safetensors the way Hugging Face's GPT2LMHeadModel saves them: names with the
"transformer." prefix, Conv1D weights transposed to (in, out), the vocabulary unpadded, the
causal-mask buffers h.N.attn.bias (U8), the tied lm_head.weight, tensors in reverse name
order, dtype DTYPE (F32, F16 or BF16, round to nearest even). ROUNDED_LLMC, if given, gets
the llm.c checkpoint of the weights as they are after that rounding (the reference loss).
--n-head-meta adds __metadata__ "n_head" (as sattn writes it), so the file loads without its
config.json (fuzz/make_seeds.sh's seed).
"""
import json
import struct
import sys


def rne(values, dtype):
    """The float32 values rounded to dtype, as (raw bytes, values widened back)."""
    if dtype == "F32":
        return struct.pack("<%df" % len(values), *values), list(values)
    if dtype == "F16":
        raw = struct.pack("<%de" % len(values), *values)  # Python packs half with round-half-even
        return raw, list(struct.unpack("<%de" % len(values), raw))
    bits = struct.unpack("<%dI" % len(values), struct.pack("<%df" % len(values), *values))
    top = [((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF for b in bits]
    back = struct.unpack("<%df" % len(top), struct.pack("<%dI" % len(top), *[t << 16 for t in top]))
    return struct.pack("<%dH" % len(top), *top), list(back)


def transpose(x, rows, cols):
    return [x[i * cols + j] for j in range(cols) for i in range(rows)]


def main():
    src, out, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
    blob = open(src, "rb").read()
    hdr = struct.unpack("<256i", blob[:1024])
    assert hdr[0] == 20240326 and hdr[1] == 3, "not an llm.c checkpoint"
    maxT, V, L, NH, C, Vp = hdr[2:8]
    p = list(struct.unpack("<%df" % ((len(blob) - 1024) // 4), blob[1024:]))
    sizes = [Vp * C, maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C, L * C, L * C,
             L * 4 * C * C, L * 4 * C, L * 4 * C * C, L * C, C, C]
    t, o = [], 0
    for n in sizes:
        t.append(p[o:o + n])
        o += n
    # llm.c's matrices are (out, in); each layer: (index, HF name, out, in or 0)
    layer = [(2, "ln_1.weight", C, 0), (3, "ln_1.bias", C, 0), (4, "attn.c_attn.weight", 3 * C, C),
             (5, "attn.c_attn.bias", 3 * C, 0), (6, "attn.c_proj.weight", C, C), (7, "attn.c_proj.bias", C, 0),
             (8, "ln_2.weight", C, 0), (9, "ln_2.bias", C, 0), (10, "mlp.c_fc.weight", 4 * C, C),
             (11, "mlp.c_fc.bias", 4 * C, 0), (12, "mlp.c_proj.weight", C, 4 * C), (13, "mlp.c_proj.bias", C, 0)]
    tensors = {"wte.weight": ([V, C], t[0][:V * C]), "wpe.weight": ([maxT, C], t[1]),
               "ln_f.weight": ([C], t[14]), "ln_f.bias": ([C], t[15])}
    for l in range(L):
        for idx, name, rows, cols in layer:
            per = sizes[idx] // L
            x = t[idx][l * per:(l + 1) * per]
            tensors["h.%d.%s" % (l, name)] = ([cols, rows], transpose(x, rows, cols)) if cols else ([rows], x)
    header, data, rounded = {"__metadata__": {"format": "pt"}}, b"", {}
    if "--n-head-meta" in sys.argv:
        header["__metadata__"]["n_head"] = str(NH)
    names = sorted(["transformer." + n for n in tensors] + ["lm_head.weight"] +
                   ["transformer.h.%d.attn.bias" % l for l in range(L)], reverse=True)
    for name in names:
        if name.split(".")[-2:] == ["attn", "bias"]:
            raw, shape, dt = bytes(1 if j <= i else 0 for i in range(maxT) for j in range(maxT)), [1, 1, maxT, maxT], "U8"
        else:
            shape, x = tensors["wte.weight" if name == "lm_head.weight" else name[len("transformer."):]]
            raw, rounded[name] = rne(x, dtype)
            dt = dtype
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(out + "/model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V, "n_positions": maxT,
           "n_ctx": maxT, "n_embd": C, "n_layer": L, "n_head": NH, "n_inner": None,
           "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05, "scale_attn_weights": True}
    with open(out + "/config.json", "w") as f:
        json.dump(cfg, f, indent=2)
    if len(sys.argv) > 4 and sys.argv[4] != "-":  # the same weights, rounded, back in llm.c's layout
        back = list(p)
        for name, x in rounded.items():
            if name == "lm_head.weight":
                continue
            short = name[len("transformer."):]
            tensors[short] = (tensors[short][0], x)
        q = [tensors["wte.weight"][1] + t[0][V * C:], tensors["wpe.weight"][1]]
        for idx, name, rows, cols in layer:
            per = []
            for l in range(L):
                x = tensors["h.%d.%s" % (l, name)][1]
                per += transpose(x, cols, rows) if cols else x
            q.append(per)
        q += [tensors["ln_f.weight"][1], tensors["ln_f.bias"][1]]
        back = [v for part in q for v in part]
        with open(sys.argv[4], "wb") as f:
            f.write(blob[:1024] + struct.pack("<%df" % len(back), *back))


main()
