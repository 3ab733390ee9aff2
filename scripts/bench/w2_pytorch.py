#!/usr/bin/python3
"""W2 of docs/performance.md in PyTorch: generate with gpt-char-small (the model of
configs/bench/gpt_char_small.yaml and w1_pytorch.py: 6 layers, d_model 384, 6 heads, context
256, vocab 65, pre-LN, GELU(tanh), learned positions, tied embeddings, biases), random weights,
fp32, CPU, batch 1, 256 new tokens from a 1-token prompt, sampled at temperature 1.

  no-cache  every token runs the full forward over the whole sequence so far (the peer
            figure of W2 in docs/performance.md)
  cache     a KV cache: the prompt once, then one position per token, keys and values of the
            earlier positions kept per layer

    /usr/bin/python3 scripts/bench/w2_pytorch.py [--tokens 256] [--prompt-len 1] [--batch 1]
        [--repeats 3] [--threads 2] [--mode both|cache|no-cache]

Prints tokens/s (batch · tokens / median wall time of one whole generation) and ms/token per mode,
in the same layout as `attnlab bench generate`.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


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
        # x [B,T,C] are positions L0 .. L0+T−1; cache: None (no cache) or a dict holding k, v
        # [B,H,L0,D] of the earlier positions (appended to here)
        B, T, C = x.shape
        D = C // self.h
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, D).transpose(1, 2) for t in (q, k, v))
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


def generate(model, prompt, tokens, cache, g):
    seq = prompt
    if cache:
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
    ap.add_argument("--mode", choices=["both", "cache", "no-cache"], default="both")
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
    modes = [True, False] if a.mode == "both" else [a.mode == "cache"]
    rate = {}
    with torch.no_grad():
        for cache in modes:
            generate(model, prompt, min(a.tokens, 8), cache, torch.Generator().manual_seed(2))  # warm-up
            secs = []
            for _ in range(a.repeats):
                g = torch.Generator().manual_seed(2)
                t0 = time.perf_counter()
                out = generate(model, prompt, a.tokens, cache, g)
                secs.append(time.perf_counter() - t0)
                assert out.shape == (a.batch, a.tokens)
            med = statistics.median(secs)
            rate[cache] = a.batch * a.tokens / med
            name = "cache" if cache else "no-cache"
            print(f"{name:<18} {rate[cache]:.1f} tokens/s  {1e3 * med / a.tokens:.3f} ms/token  (median of {a.repeats})")
    if len(rate) == 2:
        print(f"speed-up           cache / no-cache = {rate[True] / rate[False]:.1f}x")


if __name__ == "__main__":
    main()
