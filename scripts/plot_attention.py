#!/usr/bin/env python3
"""Attention heatmaps from `attnlab inspect CHECKPOINT --input TEXT --dump DIR` -> PNG.

    scripts/plot_attention.py DUMP_DIR [-o attention.png] [--slot decoder_cross] [--layers 0,1] [--heads 0,2]

One heatmap per layer (rows) and head (columns) of one attention slot: row q of a map is query
token q's attention over the key tokens (columns), labelled with the tokens of tokens.json. For an
encoder_decoder dump the default slot is the cross-attention (queries: the decoder's tokens, keys:
the source's), else the only slot there is.
Weights in [0, 1] use a sequential colour map; maps with negative entries (e.g.
differential attention) a diverging one centred at 0. Needs matplotlib
(Debian: python3-matplotlib) and NumPy; uses the Agg backend.
"""
import argparse
import json
import os
import sys


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def show_token(t):
    return {"\n": "⏎", " ": "␣", "\t": "⇥"}.get(t, t)


def parse_list(text, what):
    try:
        return [int(x) for x in text.split(",") if x.strip() != ""]
    except ValueError:
        die(f"--{what}: expected comma-separated integers, got '{text}'")


def main():
    ap = argparse.ArgumentParser(description="Plot attention maps dumped by `attnlab inspect --dump`.")
    ap.add_argument("dump_dir", metavar="DUMP_DIR")
    ap.add_argument("-o", "--output", help="PNG to write (default: DUMP_DIR/attention.png)")
    ap.add_argument("--slot", help="encoder_self | decoder_self | decoder_cross (default: decoder_cross when "
                    "present, else the first slot in the dump)")
    ap.add_argument("--layers", help="comma-separated layers to show (default: all)")
    ap.add_argument("--heads", help="comma-separated heads to show (default: all)")
    ap.add_argument("--title", help="figure title")
    ap.add_argument("--dpi", type=int, default=100)
    args = ap.parse_args()

    try:
        import numpy as np
    except ImportError:
        die("NumPy is not installed for this Python (Debian: apt install python3-numpy)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die("matplotlib is not installed for this Python (Debian: apt install python3-matplotlib; "
            "or pip install matplotlib)")

    d = args.dump_dir
    meta_path = os.path.join(d, "tokens.json")
    if not os.path.isdir(d):
        die(f"'{d}' is not a directory (make one with `attnlab inspect CHECKPOINT --input TEXT --dump {d}`)")
    if not os.path.isfile(meta_path):
        die(f"'{d}' has no tokens.json (is it a directory written by `attnlab inspect --dump`?)")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    tokens = [show_token(t) for t in meta["tokens"]]
    dec_tokens = [show_token(t) for t in meta.get("decoder_tokens", meta["tokens"])]
    entries = meta.get("attention", [])
    if not entries:
        die(f"{meta_path} lists no attention maps (the attention type kept no weights)")
    slots = [e.get("slot", "") for e in entries]
    slot = args.slot or ("decoder_cross" if "decoder_cross" in slots else slots[0])
    if slot not in slots:
        die(f"--slot {slot}: the dump has {', '.join(sorted(set(slots)))}")
    entries = [e for e in entries if e.get("slot", "") == slot]
    # queries: the decoder's tokens in a decoder slot of an encoder_decoder; keys: the source's for
    # the encoder and for cross-attention
    q_tokens = dec_tokens if slot.startswith("decoder") else tokens
    k_tokens = tokens if slot in ("encoder_self", "decoder_cross") or "decoder_tokens" not in meta else dec_tokens
    if args.layers:
        keep = set(parse_list(args.layers, "layers"))
        entries = [e for e in entries if e["layer"] in keep]
        if not entries:
            die(f"--layers {args.layers}: no such layer in {d}")
    maps = []
    for e in entries:
        path = os.path.join(d, e["file"])
        try:
            a = np.load(path)
        except (OSError, ValueError) as err:
            die(f"cannot read '{path}': {err}")
        if a.ndim != 3 or a.shape[1] != len(q_tokens) or a.shape[2] != len(k_tokens):
            die(f"'{path}' has shape {a.shape}, expected [heads, {len(q_tokens)}, {len(k_tokens)}]")
        maps.append((e, a))
    n_heads = maps[0][1].shape[0]
    heads = parse_list(args.heads, "heads") if args.heads else list(range(n_heads))
    for h in heads:
        if not 0 <= h < n_heads:
            die(f"--heads: head {h} does not exist (the maps have {n_heads} heads)")

    lo = min(float(a[heads].min()) for _, a in maps)
    hi = max(float(a[heads].max()) for _, a in maps)
    if lo < 0:
        lim = max(-lo, hi)
        cmap, vmin, vmax = "RdBu_r", -lim, lim
    else:
        cmap, vmin, vmax = "viridis", 0.0, max(hi, 1e-9)

    Tq, Tk = len(q_tokens), len(k_tokens)
    T = max(Tq, Tk)
    cell = max(1.6, min(3.0, 0.16 * T))
    rows, cols = len(maps), len(heads)
    fig, axes = plt.subplots(rows, cols, figsize=(cell * cols * Tk / T + 1.2, cell * rows * Tq / T + 0.5),
                             squeeze=False, layout="constrained")
    # at most ~32 labels per axis
    q_ticks = list(range(0, Tq, max(1, (Tq + 31) // 32)))
    k_ticks = list(range(0, Tk, max(1, (Tk + 31) // 32)))
    im = None
    for r, (e, a) in enumerate(maps):
        for c, h in enumerate(heads):
            ax = axes[r][c]
            im = ax.imshow(a[h], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks(k_ticks)
            ax.set_yticks(q_ticks)
            small = 7 if T <= 24 else 5
            ax.set_xticklabels([k_tokens[i] for i in k_ticks], fontsize=small, family="monospace")
            ax.set_yticklabels([q_tokens[i] for i in q_ticks], fontsize=small, family="monospace")
            ax.tick_params(length=0, pad=1)
            ax.set_title(f"layer {e['layer']} · head {h}", fontsize=8)
            if c == 0:
                ax.set_ylabel("query", fontsize=7)
            if r == rows - 1:
                ax.set_xlabel("key", fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.9, pad=0.01, label="attention weight")
    title = args.title or (f"{entries[0].get('slot', 'attention')} ({entries[0].get('type', '')}), "
                           f"step {meta.get('step', '?')}: \"{meta['text']}\"").replace("\n", "⏎")
    fig.suptitle(title, fontsize=9)
    out = args.output or os.path.join(d, "attention.png")
    try:
        fig.savefig(out, dpi=args.dpi)
    except OSError as err:
        die(f"cannot write '{out}': {err.strerror}")
    print(out)


if __name__ == "__main__":
    main()
