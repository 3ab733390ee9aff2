#!/usr/bin/python3
"""W2 of docs/performance.md in PyTorch: generate with gpt-char-small (the model of
configs/bench/gpt_char_small.yaml and w1_pytorch.py: 6 layers, d_model 384, 6 heads, context
256, vocab 65, pre-LN, GELU(tanh), learned positions, tied embeddings, biases), random weights,
fp32, CPU, batch 1 (or --batch), 256 new tokens from a 1-token prompt, sampled at temperature 1.

  no-cache  every token runs the full forward over the whole sequence so far (the peer
            figure of W2 in docs/performance.md); attention written out
  cache     a KV cache: the prompt once, then one position per token, keys and values of the
            earlier positions kept per layer and grown by torch.cat each token; attention
            written out
  prealloc  a preallocated KV cache: per layer K and V [B,H,256,D] allocated once, each new
            position written in place, attention by F.scaled_dot_product_attention over the
            filled prefix (no mask for one query; is_causal for a prompt at position 0, an
            explicit mask otherwise)
  both      cache and no-cache (the old default); all (the default): all three

    /usr/bin/python3 scripts/bench/w2_pytorch.py [--tokens 256] [--prompt-len 1] [--batch 1]
        [--repeats 3] [--threads 2] [--mode all|both|cached|cache|prealloc|no-cache] [--check]

Prints tokens/s (batch · tokens / median wall time of one whole generation) and ms/token per mode,
in the same layout as `attnlab bench generate`. Every mode samples with the same seed; when cache
and prealloc both run, the script asserts they sampled the same tokens (a `check` line says so),
and --check asserts it whatever the mode (one untimed generation of each).
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Prealloc:
    """One layer's preallocated KV cache: K and V [B,H,capacity,D], allocated once; `n`
    positions filled."""

    def __init__(self, B, H, capacity, D):
        self.k = torch.empty(B, H, capacity, D)
        self.v = torch.empty(B, H, capacity, D)
        self.n = 0

    def attend(self, q, k, v):
        # q, k, v [B,H,T,D] of positions n .. n+T−1: write k, v in place, attend over the prefix
        T = q.shape[2]
        L0, L = self.n, self.n + T
        self.k[:, :, L0:L] = k
        self.v[:, :, L0:L] = v
        self.n = L
        kk, vv = self.k[:, :, :L], self.v[:, :, :L]
        if T == 1:  # one query sees every filled position
            return F.scaled_dot_product_attention(q, kk, vv)
        if L0 == 0:  # square: is_causal's top-left alignment is the right one
            return F.scaled_dot_product_attention(q, kk, vv, is_causal=True)
        mask = torch.ones(T, L, dtype=torch.bool).tril(diagonal=L0)  # query i sees keys j ≤ L0 + i
        return F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)


class Block(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def attn(self, x, cache):
        # x [B,T,C] are positions L0 .. L0+T−1; cache: None (no cache), a dict holding k, v
        # [B,H,L0,D] of the earlier positions (appended to here), or a Prealloc
        B, T, C = x.shape
        D = C // self.h
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, D).transpose(1, 2) for t in (q, k, v))
        if isinstance(cache, Prealloc):
            return self.proj(cache.attend(q, k, v).transpose(1, 2).reshape(B, T, C))
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], dim=2)
                v = torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        L = k.shape[2]
        s = (q @ k.transpose(-2, -1)) / math.sqrt(D)  # [B,H,T,L]
        if T > 1:  # query i (position L − T + i) sees keys j ≤ L − T + i
            mask = torch.ones(T, L, dtype=torch.bool).tril(diagonal=L - T)
            s = s.masked_fill(~mask, float("-inf"))
        y = F.softmax(s, dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, cache):
        x = x + self.attn(self.ln1(x), cache)
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V=65, T=256, L=6, d=384, h=6):
        super().__init__()
        self.block_size = T
        self.tok = nn.Embedding(V, d)
        self.pos = nn.Embedding(T, d)
        self.blocks = nn.ModuleList(Block(d, h) for _ in range(L))
        self.lnf = nn.LayerNorm(d)

    def forward(self, idx, pos0=0, caches=None):
        # idx [B,T] at positions pos0 .. pos0+T−1; returns logits [B,T,V]
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(pos0, pos0 + T))
        for i, b in enumerate(self.blocks):
            x = b(x, None if caches is None else caches[i])
        return self.lnf(x) @ self.tok.weight.t()


def generate(model, prompt, tokens, mode, g):
    seq = prompt
    cache = mode != "no-cache"
    if cache:
        if mode == "prealloc":
            B, b0 = prompt.shape[0], model.blocks[0]
            D = b0.qkv.in_features // b0.h
            caches = [Prealloc(B, b.h, model.block_size, D) for b in model.blocks]
        else:
            caches = [dict() for _ in model.blocks]
        logits = model(seq, 0, caches)[:, -1]
    for i in range(tokens):
        if not cache:
            logits = model(seq[:, -model.block_size:])[:, -1]
        nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=g)
        seq = torch.cat([seq, nxt], dim=1)
        if i + 1 < tokens and cache:
            logits = model(nxt, seq.shape[1] - 1, caches)[:, -1]
    return seq[:, prompt.shape[1]:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", choices=["all", "both", "cached", "cache", "prealloc", "no-cache"], default="all")
    ap.add_argument("--check", action="store_true",
                    help="assert that cache and prealloc sample the same tokens, whatever --mode")
    a = ap.parse_args()
    if a.prompt_len + a.tokens - 1 > 256:
        ap.error("--prompt-len + --tokens − 1 must be ≤ 256 (the context)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(1337)
    model = GPT().eval()
    n = sum(p.numel() for p in model.parameters())
    prompt = torch.randint(0, 65, (a.batch, a.prompt_len), generator=torch.Generator().manual_seed(1))
    print(f"pytorch {torch.__version__} | threads {torch.get_num_threads()} | {n / 1e6:.2f} M parameters")
    print(f"decode             batch {a.batch}, prompt {a.prompt_len} token(s), {a.tokens} new tokens, "
          f"temperature 1, {a.repeats} repeat(s)")
    modes = {"all": ["cache", "prealloc", "no-cache"], "both": ["cache", "no-cache"],
             "cached": ["cache", "prealloc"]}.get(a.mode, [a.mode])
    rate, seqs = {}, {}
    with torch.no_grad():
        if a.check and not {"cache", "prealloc"} <= set(modes):
            for mode in ("cache", "prealloc"):  # untimed, only to compare the tokens
                seqs[mode] = generate(model, prompt, a.tokens, mode, torch.Generator().manual_seed(2))
        for mode in modes:
            generate(model, prompt, min(a.tokens, 8), mode, torch.Generator().manual_seed(2))  # warm-up
            secs = []
            for _ in range(a.repeats):
                g = torch.Generator().manual_seed(2)
                t0 = time.perf_counter()
                out = generate(model, prompt, a.tokens, mode, g)
                secs.append(time.perf_counter() - t0)
                assert out.shape == (a.batch, a.tokens)
            seqs[mode] = out
            med = statistics.median(secs)
            rate[mode] = a.batch * a.tokens / med
            print(f"{mode:<18} {rate[mode]:.1f} tokens/s  {1e3 * med / a.tokens:.3f} ms/token  (median of {a.repeats})",
                  flush=True)
    if "cache" in seqs and "prealloc" in seqs:
        same = torch.equal(seqs["cache"], seqs["prealloc"])
        if not same:
            first = (seqs["cache"] != seqs["prealloc"]).any(dim=0).nonzero()[0].item()
            print(f"check              FAILED: prealloc and cache sampled different tokens from token {first}")
        assert same, "prealloc and cache sampled different tokens"
        print(f"check              prealloc and cache sampled the same {a.batch} × {a.tokens} tokens")
    if "no-cache" in rate:
        for mode in ("cache", "prealloc"):
            if mode in rate:
                print(f"speed-up           {mode} / no-cache = {rate[mode] / rate['no-cache']:.1f}x")


if __name__ == "__main__":
    main()
