#!/usr/bin/env python3
"""An attnlab checkpoint as a torch.nn.Module, for the scaled_dot_product family and differential.

    .venv/bin/python scripts/torch_model.py CKPT --input TEXT          # logits shape, next token
    .venv/bin/python scripts/torch_model.py CKPT --dump DIR [--tol T]  # compare with `attnlab inspect --dump`

As a library:

    from torch_model import load_model
    model, info = load_model("runs/x/checkpoints/best.safetensors")
    logits = model(torch.tensor([info.encode("ROMEO:")]))          # [1, T, V]

The module is written from docs/checkpoint-format.md and docs/attention.md, not from attnlab's C++:
every model kind (decoder, encoder with its LM or classification head, encoder_decoder with
cross-attention or the bottleneck), every position scheme (learned, sinusoidal with the √C
embedding scale, RoPE on interleaved pairs, ALiBi, none), pre/post norm, mlp on/off, biases,
tied/untied/shared embeddings, n_kv_heads (GQA/MQA), scale, window, and both GELU forms
(model.activation). Its state_dict keys are the checkpoint's tensor names, so loading is
load_state_dict(strict=True). Attention runs through F.scaled_dot_product_attention, with an
additive mask where a window, ALiBi or key padding needs one. Differential self-attention (Ye et
al. 2024: two maps per head, λ, the headwise RMSNorm or diff_norm false) is written out from
docs/attention.md. Other attention types (bahdanau, luong, linear, differential in the
cross-attention slot) are refused with an error.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

SDP_FAMILY = ("scaled_dot_product", "causal", "bidirectional", "flash")
SLOTS = {"decoder": ["decoder.self_attention"], "encoder": ["encoder.self_attention"],
         "encoder_decoder": ["encoder.self_attention", "decoder.self_attention", "decoder.cross_attention"]}


class CheckpointError(Exception):
    """A checkpoint this script cannot turn into a module; the message says why."""


# ---------------------------------------------------------------- reading the file

def read_safetensors(path):
    """(tensors {name: float32 array} in file order, metadata {str: str})."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise CheckpointError(f"{path}: too short to be a safetensors file")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise CheckpointError(f"{path}: header length {n} runs past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, t in header.items():
        if t["dtype"] != "F32":
            raise CheckpointError(f"{path}: tensor {name} has dtype {t['dtype']}, expected F32")
        b, e = t["data_offsets"]
        tensors[name] = np.frombuffer(data[b:e], dtype="<f4").reshape(t["shape"]).copy()
    return tensors, meta


def parse_config(text):
    """The embedded config (`attnlab config show` YAML) as nested dicts of strings."""
    root, stack = {}, [(-1, None)]
    stack[0] = (-1, root)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        value = value.strip()
        if value == "":
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            parent[key] = value
    return root


# Defaults of the keys the module reads, for configs that leave them out (attnlab fills them the same
# way: docs/config.md); each attention slot inherits what it does not set from model.attention.
MODEL_DEFAULTS = {"n_layers": "4", "n_encoder_layers": "0", "d_model": "128", "n_heads": "4", "d_ff": "0",
                  "mlp": "true", "activation": "gelu_tanh", "block_size": "128", "positions": "learned",
                  "tie_embeddings": "true", "head_bias": "false", "bias": "true", "norm": "pre", "share_embeddings": "true",
                  "bottleneck": "false", "pool": "first"}
ATTENTION_DEFAULTS = {"type": "scaled_dot_product", "n_kv_heads": "0", "scale": "inv_sqrt_dk", "window": "0",
                      "rope_base": "10000.0"}


def resolve(cfg):
    """cfg with every model key the module reads, and each slot's attention options complete."""
    m = dict(MODEL_DEFAULTS, **cfg.get("model", {}))
    base = dict(ATTENTION_DEFAULTS, **m.get("attention", {}))
    m["attention"] = base
    for stack in ("encoder", "decoder"):
        m[stack] = dict(m.get(stack, {}))
        for sub in ("self_attention", "cross_attention"):
            m[stack][sub] = dict(base, **m[stack].get(sub, {}))
    m.setdefault("kind", "decoder")
    return dict(cfg, model=m)


def _bool(s):
    return str(s).lower() in ("true", "yes", "on")


class Info:
    """What the checkpoint says besides its tensors: config, vocabulary, kind."""

    def __init__(self, path, meta, cfg):
        self.path, self.meta, self.cfg = path, meta, cfg
        self.kind = cfg["model"]["kind"]
        self.n_classes = int(meta.get("n_classes", "0") or 0)
        self.tokenizer = meta.get("tokenizer", "char")
        if self.tokenizer == "char":
            self.tokens = [bytes([int(b)]) for b in meta["vocab_bytes"].split(",")]
        else:
            self.tokens = [t.encode("utf-8") for t in json.loads(meta["vocab_tokens"])]

    @property
    def vocab_size(self):
        return len(self.tokens)

    def encode(self, text):
        """Token ids of text, the way attnlab's tokenizers read it (char/chars: byte by byte;
        symbols: whitespace-separated tokens)."""
        if self.tokenizer == "symbols":
            pieces = [p.encode("utf-8") for p in text.split()]
        else:
            pieces = [bytes([b]) for b in text.encode("utf-8")]
        index = {t: i for i, t in enumerate(self.tokens)}
        ids = []
        for p in pieces:
            if p not in index:
                raise CheckpointError(f"{self.path}: {p!r} is not in the checkpoint's vocabulary")
            ids.append(index[p])
        return ids


# ---------------------------------------------------------------- the module

def _torch():
    import torch  # imported here so that `--help` works without torch
    return torch


def build_classes():
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    def param(*shape):
        return nn.Parameter(torch.zeros(*shape))

    class Norm(nn.Module):  # layernorm, ε = 1e-5, biased variance: tensors .w, .b
        def __init__(self, C):
            super().__init__()
            self.w, self.b = param(C), param(C)

        def forward(self, x):
            return F.layer_norm(x, (x.shape[-1],), self.w, self.b, 1e-5)

    class Lin(nn.Module):  # y = x Wᵀ + b: tensors .w [out, in], .b [out]
        def __init__(self, n_out, n_in, bias):
            super().__init__()
            self.w = param(n_out, n_in)
            self.b = param(n_out) if bias else None

        def forward(self, x):
            return F.linear(x, self.w, self.b)

    class MLP(nn.Module):
        def __init__(self, C, Fw, bias, exact):
            super().__init__()
            self.fc, self.proj = Lin(Fw, C, bias), Lin(C, Fw, bias)
            self.approximate = "none" if exact else "tanh"

        def forward(self, x):
            return self.proj(F.gelu(self.fc(x), approximate=self.approximate))

    def alibi_slopes(H):
        P = 1
        while P * 2 <= H:
            P *= 2
        return [2.0 ** (-8.0 * (h + 1) / P) if h < P else 2.0 ** (-8.0 * (2 * (h - P) + 1) / (2 * P))
                for h in range(H)]

    def rope(x, base):  # x [B, H, T, D]; pair (2i, 2i+1) at position p rotated by p·base^(−2i/D)
        T, D = x.shape[-2], x.shape[-1]
        theta = base ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]
        cos, sin = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)

    class Attention(nn.Module):
        """Multi-head scaled dot-product attention: tensors w_q, w_k, w_v, w_o (+ b_* with bias)."""

        def __init__(self, C, H, opts, bias, causal, positions):
            super().__init__()
            Hkv = int(opts["n_kv_heads"]) or H
            D = C // H
            self.C, self.H, self.Hkv, self.D = C, H, Hkv, D
            self.w_q, self.w_k, self.w_v, self.w_o = param(C, C), param(Hkv * D, C), param(Hkv * D, C), param(C, C)
            if bias:
                self.b_q, self.b_k, self.b_v, self.b_o = param(C), param(Hkv * D), param(Hkv * D), param(C)
            else:
                self.b_q = self.b_k = self.b_v = self.b_o = None
            scale = opts["scale"]
            self.scale = 1.0 / math.sqrt(D) if scale == "inv_sqrt_dk" else 1.0 if scale == "none" else float(scale)
            self.window = int(opts["window"])
            self.causal = causal
            self.rope_base = float(opts["rope_base"]) if positions == "rope" else None
            self.alibi = alibi_slopes(H) if positions == "alibi" else None
            self.keep_weights = False
            self.weights = self.scores = None  # kept by forward when keep_weights: [B, H, Tq, Tk]

        def allowed(self, Tq, Tk):
            """([Tq, Tk] bool: query i may see key r, p − r) with query i at position p = i + Tk − Tq."""
            p = torch.arange(Tq)[:, None] + (Tk - Tq)
            r = torch.arange(Tk)[None, :]
            allowed = torch.ones(Tq, Tk, dtype=torch.bool)
            if self.causal:
                allowed &= r <= p
            if self.window:
                allowed &= (p - r < self.window) if self.causal else ((p - r).abs() < self.window)
            return allowed, p - r

        def bias_mask(self, Tq, Tk, key_keep, dtype):
            """Additive mask [B or 1, H or 1, Tq, Tk] (None when plain causal / no mask does)."""
            if not (self.window or self.alibi or key_keep is not None or self.keep_weights):
                return None
            allowed, dist = self.allowed(Tq, Tk)
            m = torch.zeros(1, 1, Tq, Tk, dtype=dtype).masked_fill(~allowed, float("-inf"))
            if self.alibi:
                slopes = torch.tensor(self.alibi, dtype=dtype)[:, None, None]
                m = m - slopes * dist.abs().to(dtype)[None]  # [1, H, Tq, Tk]; = −m(p−r) where causal
            if key_keep is not None:
                m = m.masked_fill(~key_keep[:, None, None, :], float("-inf"))
            return m

        def forward(self, xq, xkv, key_keep=None):
            B, Tq, _ = xq.shape
            Tk = xkv.shape[1]
            H, Hkv, D = self.H, self.Hkv, self.D
            q = F.linear(xq, self.w_q, self.b_q).view(B, Tq, H, D).transpose(1, 2)
            k = F.linear(xkv, self.w_k, self.b_k).view(B, Tk, Hkv, D).transpose(1, 2)
            v = F.linear(xkv, self.w_v, self.b_v).view(B, Tk, Hkv, D).transpose(1, 2)
            if self.rope_base is not None:
                q, k = rope(q, self.rope_base), rope(k, self.rope_base)
            if Hkv != H:  # query head h reads key/value head h / (H / Hkv)
                k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
            mask = self.bias_mask(Tq, Tk, key_keep, q.dtype)
            if self.keep_weights:  # the weights themselves (and the logits), for comparing attention maps
                s = q @ k.transpose(-1, -2) * self.scale + mask
                w = torch.softmax(s, dim=-1)
                self.scores, self.weights = s.detach(), w.detach()
                o = w @ v
            elif mask is None:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.scale)
            else:
                o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
            return F.linear(o.transpose(1, 2).reshape(B, Tq, H * D), self.w_o, self.b_o)

    class DiffAttention(Attention):
        """Differential attention (Ye et al. 2024; docs/attention.md): H heads, each two softmax maps
        over d = C/(2H)-wide halves of its q and k ([Q1 | Q2] per head), out (A1 − λ A2) V with V
        2d wide, then (unless diff_norm is false) RMSNorm (ε 1e-5, weight norm_w, shared by the
        heads) times (1 − λ_init). λ = exp(λ_q1·λ_k1) − exp(λ_q2·λ_k2) + λ_init, one per layer,
        λ_init = 0.8 − 0.6 exp(−0.3 l). With keep_weights, `weights` is A1 − λ A2 (what attnlab's
        attention_weights() returns), `scores` map 1's logits, and `lam` and `pre_rms` (the RMS
        of each head's output row before the norm, [B, H, Tq]) are kept as well."""

        def __init__(self, C, H, opts, bias, causal, positions, layer_index):
            super().__init__(C, H, opts, bias, causal, positions)
            if self.alibi is not None:
                raise CheckpointError("differential attention does not take positions: alibi")
            d = C // (2 * H)
            self.d = d
            self.scale = 1.0 / math.sqrt(d) if opts["scale"] == "inv_sqrt_dk" else self.scale
            self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (param(d) for _ in range(4))
            self.norm = _bool(opts.get("diff_norm", "true"))
            if self.norm:
                self.norm_w = param(2 * d)
            self.lambda_init = 0.8 - 0.6 * math.exp(-0.3 * layer_index)
            self.lam = self.pre_rms = None

        def lam_value(self):
            return (torch.exp(torch.dot(self.lambda_q1, self.lambda_k1))
                    - torch.exp(torch.dot(self.lambda_q2, self.lambda_k2)) + self.lambda_init)

        def forward(self, xq, xkv, key_keep=None):
            B, Tq, _ = xq.shape
            Tk = xkv.shape[1]
            H, Hkv, d = self.H, self.Hkv, self.d
            q = F.linear(xq, self.w_q, self.b_q).view(B, Tq, H, 2, d).permute(3, 0, 2, 1, 4)   # [2,B,H,Tq,d]
            k = F.linear(xkv, self.w_k, self.b_k).view(B, Tk, Hkv, 2, d).permute(3, 0, 2, 1, 4)
            v = F.linear(xkv, self.w_v, self.b_v).view(B, Tk, Hkv, 2 * d).transpose(1, 2)        # [B,Hkv,Tk,2d]
            if self.rope_base is not None:
                q, k = rope(q, self.rope_base), rope(k, self.rope_base)
            if Hkv != H:
                k, v = k.repeat_interleave(H // Hkv, dim=2), v.repeat_interleave(H // Hkv, dim=1)
            allowed = self.allowed(Tq, Tk)[0][None, None]
            if key_keep is not None:
                allowed = allowed & key_keep[:, None, None, :]
            s = [(q[c] @ k[c].transpose(-1, -2) * self.scale).masked_fill(~allowed, float("-inf")) for c in range(2)]
            a = [torch.nan_to_num(torch.softmax(x, dim=-1)) for x in s]  # a row with no visible key: zeros
            lam = self.lam_value()
            w = a[0] - lam * a[1]
            o = w @ v                                                                          # [B,H,Tq,2d]
            rms = torch.sqrt(o.pow(2).mean(-1) + 1e-5)
            if self.keep_weights:
                self.scores, self.weights = s[0].detach(), w.detach()
                self.lam, self.pre_rms = float(lam), rms.detach()
            if self.norm:
                o = o / rms[..., None] * self.norm_w * (1.0 - self.lambda_init)
            return F.linear(o.transpose(1, 2).reshape(B, Tq, H * 2 * d), self.w_o, self.b_o)

    class Block(nn.Module):
        """Residual sublayers: attn (ln1), xattn (lnx, when cross), mlp (ln2, when mlp)."""

        def __init__(self, m, self_opts, cross_opts, causal, positions, layer_index=0):
            super().__init__()
            C, H, bias = int(m["d_model"]), int(m["n_heads"]), _bool(m["bias"])
            self.post = m["norm"] == "post"
            self.ln1 = Norm(C)
            if self_opts["type"] == "differential":
                self.attn = DiffAttention(C, H, self_opts, bias, causal, positions, layer_index)
            else:
                self.attn = Attention(C, H, self_opts, bias, causal, positions)
            if cross_opts is not None:
                self.lnx = Norm(C)
                self.xattn = Attention(C, H, cross_opts, bias, False, "none")
            if _bool(m["mlp"]):
                Fw = int(m["d_ff"]) or 4 * C
                self.ln2 = Norm(C)
                self.mlp = MLP(C, Fw, bias, m.get("activation", "gelu_tanh") == "gelu")

        def sub(self, x, ln, f):
            return ln(x + f(x)) if self.post else x + f(ln(x))

        def forward(self, x, self_keep=None, mem=None, mem_keep=None):
            x = self.sub(x, self.ln1, lambda a: self.attn(a, a, self_keep))
            if hasattr(self, "xattn"):
                x = self.sub(x, self.lnx, lambda a: self.xattn(a, mem, mem_keep))
            if hasattr(self, "mlp"):
                x = self.sub(x, self.ln2, self.mlp)
            return x

    def sinusoids(T, C, dtype):
        t = torch.arange(T, dtype=torch.float64)[:, None]
        i = torch.arange(C)
        freq = 10000.0 ** (-(i - i % 2).to(torch.float64) / C)
        a = t * freq[None, :]
        return torch.where(i % 2 == 0, torch.sin(a), torch.cos(a)).to(dtype)

    def make_stack(holder, m, n_layers, slot, cross_slot, causal, learned):
        """Gives holder pos_emb (learned), blocks, lnf (pre-norm): the parts of one stack."""
        C, T = int(m["d_model"]), int(m["block_size"])
        slot_opts = m[slot.split(".")[0]][slot.split(".")[1]]
        cross_opts = m["decoder"]["cross_attention"] if cross_slot else None
        if learned:
            holder.pos_emb = param(T, C)
        holder.blocks = nn.ModuleList(
            Block(m, slot_opts, cross_opts, causal, m["positions"], i) for i in range(n_layers))
        if m["norm"] == "pre":
            holder.lnf = Norm(C)

    class Stack(nn.Module):
        def __init__(self, m, n_layers, slot, cross_slot, causal):
            super().__init__()
            make_stack(self, m, n_layers, slot, cross_slot, causal, m["positions"] == "learned")

    class AttnlabModel(nn.Module):
        """forward(ids [B,T], src [B,S] for encoder_decoder, x_len/src_len [B] optional) -> logits."""

        def __init__(self, info):
            super().__init__()
            m = info.cfg["model"]
            self.kind, self.m, V = info.kind, m, info.vocab_size
            C = int(m["d_model"])
            self.C = C
            self.sinusoidal = m["positions"] == "sinusoidal"
            learned = m["positions"] == "learned"
            self.tok_emb = param(V, C)
            if self.kind == "encoder_decoder":
                if not _bool(m["share_embeddings"]):
                    self.src_emb = param(V, C)
                enc_layers = int(m["n_encoder_layers"]) or int(m["n_layers"])
                self.encoder = Stack(m, enc_layers, "encoder.self_attention", None, False)
                cross = None if _bool(m["bottleneck"]) else "decoder.cross_attention"
                self.decoder = Stack(m, int(m["n_layers"]), "decoder.self_attention", cross, True)
            else:
                slot = SLOTS[self.kind][0]
                make_stack(self, m, int(m["n_layers"]), slot, None, self.kind == "decoder", learned)
            if info.n_classes > 0:
                self.cls_head = Lin(info.n_classes, C, True)
                self.pool = m["pool"]
            elif not _bool(m["tie_embeddings"]):
                self.head = Lin(V, C, _bool(m["head_bias"]))
            elif _bool(m["head_bias"]):  # a tied head with a bias of its own: tensor head.b alone
                self.head = nn.Module()
                self.head.b = param(V)

        def embed(self, table, stack, ids):
            x = table[ids]
            T = ids.shape[1]
            if self.sinusoidal:
                x = x * math.sqrt(self.C) + sinusoids(T, self.C, x.dtype)
            elif hasattr(stack, "pos_emb"):
                x = x + stack.pos_emb[:T]
            return x

        @staticmethod
        def run(stack, x, keep=None, mem=None, mem_keep=None):
            for blk in stack.blocks:
                x = blk(x, keep, mem, mem_keep)
            return stack.lnf(x) if hasattr(stack, "lnf") else x

        @staticmethod
        def keep(lens, T):
            return None if lens is None else torch.arange(T)[None, :] < torch.as_tensor(lens)[:, None]

        def lm_head(self, h):
            head = getattr(self, "head", None)
            return F.linear(h, getattr(head, "w", self.tok_emb), getattr(head, "b", None))

        def forward(self, ids, src=None, x_len=None, src_len=None):
            if self.kind == "encoder_decoder":
                if src is None:
                    raise CheckpointError("an encoder_decoder needs a source: forward(ids, src)")
                skeep = self.keep(src_len, src.shape[1])
                table = self.src_emb if hasattr(self, "src_emb") else self.tok_emb
                mem = self.run(self.encoder, self.embed(table, self.encoder, src), skeep)
                x = self.embed(self.tok_emb, self.decoder, ids)
                if _bool(self.m["bottleneck"]):
                    if skeep is None:
                        ctx = mem.mean(dim=1)
                    else:
                        w = skeep.to(mem.dtype)[..., None]
                        ctx = (mem * w).sum(1) / w.sum(1).clamp(min=1)
                    return self.lm_head(self.run(self.decoder, x + ctx[:, None, :]))
                return self.lm_head(self.run(self.decoder, x, None, mem, skeep))
            keep = self.keep(x_len, ids.shape[1]) if self.kind == "encoder" else None
            h = self.run(self, self.embed(self.tok_emb, self, ids), keep)
            if hasattr(self, "cls_head"):
                if self.pool == "first":
                    pooled = h[:, 0]
                else:
                    w = (keep if keep is not None else torch.ones(h.shape[:2], dtype=torch.bool)).to(h.dtype)[..., None]
                    pooled = (h * w).sum(1) / w.sum(1).clamp(min=1)
                return self.cls_head(pooled)
            return self.lm_head(h)

        def attention_modules(self):
            """[(label, Attention)] named as `attnlab inspect --dump` names its files."""
            out = []
            if self.kind == "encoder_decoder":
                out += [(f"encoder_self_L{i}", b.attn) for i, b in enumerate(self.encoder.blocks)]
                out += [(f"decoder_self_L{i}", b.attn) for i, b in enumerate(self.decoder.blocks)]
                out += [(f"decoder_cross_L{i}", b.xattn) for i, b in enumerate(self.decoder.blocks)
                        if hasattr(b, "xattn")]
            else:
                label = "decoder_self" if self.kind == "decoder" else "encoder_self"
                out += [(f"{label}_L{i}", b.attn) for i, b in enumerate(self.blocks)]
            return out

    return AttnlabModel


def load_model(path, dtype="float32"):
    """(AttnlabModel in eval mode with the checkpoint's weights, Info). CheckpointError when the
    checkpoint holds something this module does not build."""
    torch = _torch()
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "attnlab":
        raise CheckpointError(f"{path}: not an attnlab checkpoint (metadata format is {meta.get('format')!r})")
    if "config" not in meta:
        raise CheckpointError(f"{path}: the metadata has no embedded config")
    info = Info(path, meta, resolve(parse_config(meta["config"])))
    m = info.cfg["model"]
    for slot in SLOTS[info.kind]:
        if slot == "decoder.cross_attention" and _bool(m["bottleneck"]):
            continue
        a, b = slot.split(".")
        t = m[a][b]["type"]
        if t not in SDP_FAMILY and not (t == "differential" and b == "self_attention"):
            raise CheckpointError(
                f"{path}: model.{slot}.type is '{t}'; scripts/torch_model.py builds the scaled_dot_product "
                f"family ({', '.join(SDP_FAMILY)}) and differential self-attention, not bahdanau, luong or "
                f"linear, nor differential cross-attention")
    model = build_classes()(info)
    state = {k: torch.from_numpy(v) for k, v in tensors.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match the config: missing {missing}, unexpected {unexpected}")
    model = model.to(getattr(torch, dtype)).eval()
    return model, info


def logits_for_dump(model, info, dump_dir, keep_weights=False):
    """Runs the module on the input recorded in DIR/tokens.json; returns (logits [rows, V] as numpy,
    {label: attention weights [H, Tq, Tk]})."""
    torch = _torch()
    with open(os.path.join(dump_dir, "tokens.json")) as f:
        tj = json.load(f)
    ids = torch.tensor([tj["ids"]])
    for _, a in model.attention_modules():
        a.keep_weights = keep_weights
    with torch.no_grad():
        if info.kind == "encoder_decoder":
            out = model(torch.tensor([tj["decoder_ids"]]), src=ids)
        else:
            out = model(ids)
    weights = {label: a.weights[0].float().numpy() for label, a in model.attention_modules() if a.weights is not None}
    for _, a in model.attention_modules():
        a.keep_weights, a.weights = False, None
    return out[0].float().numpy().reshape(-1, out.shape[-1]), weights


def compare(ckpt, dump_dir, tol, dtype="float32"):
    """Prints the comparison with `attnlab inspect --dump` output; returns True when within tol."""
    model, info = load_model(ckpt, dtype)
    got, weights = logits_for_dump(model, info, dump_dir, keep_weights=True)
    want = np.load(os.path.join(dump_dir, "logits.npy"))
    if want.shape != got.shape:
        print(f"logits: shape {got.shape} here, {want.shape} in {dump_dir}")
        return False
    scale = max(1.0, float(np.abs(want).max()))
    diff = float(np.abs(got - want).max())
    ok = diff <= tol * scale
    print(f"logits {list(want.shape)}: max |torch - attnlab| = {diff:.3g}, max |logits| = {scale:.3g}, "
          f"relative {diff / scale:.3g} (tolerance {tol:g}) {'ok' if ok else 'FAIL'}")
    for label, w in weights.items():
        fn = os.path.join(dump_dir, f"attn_{label}.npy")
        if not os.path.exists(fn):
            continue
        a = np.load(fn)
        d = float(np.abs(a - w).max()) if a.shape == w.shape else float("inf")
        good = d <= tol
        ok = ok and good
        print(f"attn_{label} {list(a.shape)}: max |diff| = {d:.3g} {'ok' if good else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--input", help="text to run the model on (prints the logits' shape and the next token)")
    ap.add_argument("--dump", help="a directory written by `attnlab inspect CKPT --input TEXT --dump DIR`: "
                                   "compare its logits.npy and attn_*.npy with this module's")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="largest allowed max |difference| of the logits relative to max(1, max |logits|), "
                         "and of the attention weights (default 1e-4)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()
    try:
        if args.dump:
            sys.exit(0 if compare(args.checkpoint, args.dump, args.tol, args.dtype) else 1)
        if not args.input:
            ap.error("give --input TEXT or --dump DIR")
        torch = _torch()
        model, info = load_model(args.checkpoint, args.dtype)
        if info.kind == "encoder_decoder":
            raise CheckpointError("an encoder_decoder's decoder input is the model's own output: use "
                                  "`attnlab inspect CKPT --input TEXT --dump DIR`, then --dump DIR")
        with torch.no_grad():
            logits = model(torch.tensor([info.encode(args.input)]))
        print(f"logits shape {list(logits.shape)}")
        if info.n_classes == 0:
            nxt = info.tokens[int(logits[0, -1].argmax())]
            print(f"most likely next token: {nxt.decode('utf-8', 'replace')!r}")
        else:
            print(f"class: {int(logits[0].argmax())}")
    except (CheckpointError, OSError, KeyError, ValueError) as e:
        msg = str(e) if isinstance(e, CheckpointError) else f"{args.checkpoint}: {type(e).__name__}: {e}"
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
