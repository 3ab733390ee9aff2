#!/usr/bin/env python3
"""Converts a nanoGPT checkpoint (ckpt.pt) into an attnlab checkpoint.

    .venv/bin/python scripts/import_nanogpt.py out-shakespeare-char/ckpt.pt \\
        --meta data/shakespeare_char/meta.pkl -o runs/nanogpt.safetensors
    ./build/attnlab sample runs/nanogpt.safetensors --prompt "ROMEO:"

ckpt.pt is the dict nanoGPT's train.py saves: `model` (the GPT's state_dict: GPT-2 names under
`transformer.` and `lm_head.`, possibly with torch.compile's `_orig_mod.` prefix) and
`model_args` (n_layer, n_head, n_embd, block_size, bias, vocab_size, dropout). Its GPT is a
pre-norm decoder with learned positions, the exact (erf) GELU, an MLP of 4·n_embd, layernorm
ε = 1e-5 and the output head tied to the token embedding: attnlab's decoder with
model.activation: gelu. bias=False (no biases in linear layers or layernorms) becomes
model.bias: false with zero layernorm shifts, which computes the same. The vocabulary comes from
meta.pkl (stoi/itos of a character-level dataset such as shakespeare_char); a checkpoint without
one uses GPT-2's BPE, which attnlab has no tokenizer for: that is an error, as is anything else
attnlab cannot represent. The file is written as attnlab writes checkpoints (docs/checkpoint-format.md),
to a temporary name renamed into place. Loading ckpt.pt uses torch.load(weights_only=True);
meta.pkl is a pickle, so only import files you trust.
"""
import argparse
import json
import os
import pickle
import struct
import sys

import numpy as np


class ConversionError(Exception):
    """Something in the nanoGPT checkpoint attnlab cannot represent; the message says what."""


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def load_ckpt(path):
    import torch
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a file that is not a checkpoint
        raise ConversionError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e})")
    if not isinstance(ck, dict) or "model" not in ck or "model_args" not in ck:
        raise ConversionError(f"{path}: not a nanoGPT ckpt.pt (expected a dict with 'model' and 'model_args')")
    sd = {}
    for k, v in ck["model"].items():
        k = k[len("_orig_mod."):] if k.startswith("_orig_mod.") else k
        sd[k] = v.detach().to("cpu").float().numpy()
    return ck, sd


def load_vocab(meta_path, vocab_size):
    """The id -> byte vocabulary of a character-level meta.pkl (every character one byte)."""
    with open(meta_path, "rb") as f:
        meta = pickle.load(f)
    itos = meta.get("itos") if isinstance(meta, dict) else None
    if not isinstance(itos, dict):
        raise ConversionError(f"{meta_path}: no 'itos' table (is it a character-level meta.pkl?)")
    if sorted(itos) != list(range(len(itos))):
        raise ConversionError(f"{meta_path}: itos ids are not 0..{len(itos) - 1}")
    if len(itos) != vocab_size:
        raise ConversionError(f"{meta_path}: {len(itos)} tokens, but the checkpoint's vocab_size is {vocab_size}")
    out = []
    for i in range(len(itos)):
        ch = itos[i]
        b = ch.encode("utf-8") if isinstance(ch, str) else b""
        if len(b) != 1:
            raise ConversionError(f"{meta_path}: token {i} is {ch!r}; attnlab's char tokenizer holds single bytes "
                               "(ASCII characters) only")
        out.append(b[0])
    if len(set(out)) != len(out):
        raise ConversionError(f"{meta_path}: a character appears twice in itos")
    return out


def convert(sd, args_):
    """(attnlab tensors in checkpoint order as [(name, array)], config YAML)."""
    L, H, C, T = (int(args_[k]) for k in ("n_layer", "n_head", "n_embd", "block_size"))
    V, bias = int(args_["vocab_size"]), bool(args_.get("bias", True))
    if C % H:
        raise ConversionError(f"n_embd {C} is not a multiple of n_head {H}")
    used = set()

    def take(name, shape):
        if name not in sd:
            raise ConversionError(f"the state_dict has no '{name}' (is this nanoGPT's GPT?)")
        a = sd[name]
        if tuple(a.shape) != tuple(shape):
            raise ConversionError(f"'{name}' has shape {list(a.shape)}, expected {list(shape)} from model_args")
        used.add(name)
        return a

    def norm(src, dst, out):
        out.append((dst + ".w", take(src + ".weight", (C,))))
        out.append((dst + ".b", take(src + ".bias", (C,)) if bias else np.zeros(C, np.float32)))

    out = [("tok_emb", take("transformer.wte.weight", (V, C))), ("pos_emb", take("transformer.wpe.weight", (T, C)))]
    for l in range(L):
        p, q = f"transformer.h.{l}.", f"blocks.{l}."
        norm(p + "ln_1", q + "ln1", out)
        w = take(p + "attn.c_attn.weight", (3 * C, C))  # rows: q, k, v (nanoGPT splits the output in three)
        out += [(q + "attn.w_q", w[:C]), (q + "attn.w_k", w[C:2 * C]), (q + "attn.w_v", w[2 * C:]),
                (q + "attn.w_o", take(p + "attn.c_proj.weight", (C, C)))]
        if bias:
            b = take(p + "attn.c_attn.bias", (3 * C,))
            out += [(q + "attn.b_q", b[:C]), (q + "attn.b_k", b[C:2 * C]), (q + "attn.b_v", b[2 * C:]),
                    (q + "attn.b_o", take(p + "attn.c_proj.bias", (C,)))]
        norm(p + "ln_2", q + "ln2", out)
        out.append((q + "mlp.fc.w", take(p + "mlp.c_fc.weight", (4 * C, C))))
        if bias:
            out.append((q + "mlp.fc.b", take(p + "mlp.c_fc.bias", (4 * C,))))
        out.append((q + "mlp.proj.w", take(p + "mlp.c_proj.weight", (C, 4 * C))))
        if bias:
            out.append((q + "mlp.proj.b", take(p + "mlp.c_proj.bias", (C,))))
        mask = p + "attn.bias"  # the causal-mask buffer of nanoGPT's non-flash attention path
        if mask in sd and sd[mask].ndim == 4:
            used.add(mask)
    norm("transformer.ln_f", "lnf", out)
    tied = True
    if "lm_head.weight" in sd:
        head = take("lm_head.weight", (V, C))
        tied = np.array_equal(head, sd["transformer.wte.weight"])
        if not tied:
            out.append(("head.w", head))
    left = sorted(set(sd) - used)
    if left:
        raise ConversionError(f"tensors attnlab has no place for: {', '.join(left[:6])}{' ...' if len(left) > 6 else ''}")
    cfg = f"""model:
  kind: "decoder"
  n_layers: {L}
  d_model: {C}
  n_heads: {H}
  d_ff: {4 * C}
  mlp: true
  activation: "gelu"
  block_size: {T}
  positions: "learned"
  tie_embeddings: {"true" if tied else "false"}
  bias: {"true" if bias else "false"}
  dropout: {float(args_.get("dropout", 0.0))}
  norm: "pre"
  attention:
    type: "causal"
    n_kv_heads: 0
    scale: "inv_sqrt_dk"
    window: 0
"""
    return out, cfg


def write_checkpoint(path, tensors, metadata):
    header, chunks, off = {}, [], 0
    for name, a in tensors:
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    data = b"".join(chunks)
    meta = dict(metadata, checksum_fnv1a64=fnv1a64(data))
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt", help="nanoGPT's ckpt.pt")
    ap.add_argument("--meta", help="the dataset's meta.pkl (stoi/itos); default: data/<dataset>/meta.pkl "
                                   "from the checkpoint's config, next to the checkpoint or in the current directory")
    ap.add_argument("-o", "--output", required=True, help="the attnlab checkpoint to write (.safetensors)")
    ap.add_argument("--data-path", help="data.path of the embedded config (the text the model was trained on); "
                                        "default: input.txt next to meta.pkl")
    a = ap.parse_args()
    try:
        ck, sd = load_ckpt(a.ckpt)
        margs = ck["model_args"]
        for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size"):
            if k not in margs:
                raise ConversionError(f"{a.ckpt}: model_args has no '{k}'")
        meta = a.meta
        if meta is None:
            dataset = (ck.get("config") or {}).get("dataset")
            here = os.path.dirname(os.path.abspath(a.ckpt))
            cands = [os.path.join(d, "data", dataset, "meta.pkl") for d in (here, os.path.dirname(here), ".")] \
                if dataset else []
            meta = next((c for c in cands if os.path.isfile(c)), None)
            if meta is None:
                raise ConversionError(f"{a.ckpt}: no meta.pkl found (looked for {', '.join(cands) or 'none: no dataset in its config'}); "
                                   "without one the vocabulary is GPT-2's BPE, which attnlab cannot tokenize: "
                                   "give --meta PATH of a character-level dataset")
        vocab = load_vocab(meta, int(margs["vocab_size"]))
        tensors, cfg = convert(sd, margs)
        data_path = a.data_path or os.path.join(os.path.dirname(os.path.abspath(meta)), "input.txt")
        cfg += f'data:\n  task: "text"\n  path: {json.dumps(data_path)}\n'
        metadata = {"format": "attnlab", "format_version": "1", "kind": "decoder",
                    "step": str(int(ck.get("iter_num", 0))), "config": cfg, "tokenizer": "char",
                    "vocab_bytes": ",".join(str(b) for b in vocab), "n_classes": "0",
                    "imported_from": "nanoGPT ckpt.pt"}
        write_checkpoint(a.output, tensors, metadata)
    except (ConversionError, OSError, pickle.UnpicklingError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    n = sum(t.size for _, t in tensors)
    print(f"wrote {a.output}: nanoGPT decoder, {margs['n_layer']} layers, d_model {margs['n_embd']}, "
          f"{margs['n_head']} heads, block_size {margs['block_size']}, vocabulary {len(vocab)}, {n} parameters, "
          f"step {metadata['step']}")


if __name__ == "__main__":
    main()
