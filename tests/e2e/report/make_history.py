"""Writes RUN_DIR/attention_history.jsonl in the format of docs (one line per val row of
metrics.jsonl), with maps made up here: a diagonal that sharpens over the steps. For the report's
test when a run has no history file of its own. Args: RUN_DIR INSPECT_JSON (attnlab inspect --json
of a checkpoint of the run: slots, heads, layers)."""
import base64
import json
import sys

import numpy as np

run, inspect_json = sys.argv[1], sys.argv[2]
info = json.load(open(inspect_json))
steps = [r["step"] for r in map(json.loads, open(f"{run}/metrics.jsonl")) if r.get("split") == "val"]
src = ["a", "b", "c", "d", "e", "f"]
tokens = ["<s>", "x", "y", "z", "w", "v", "u"]
seq2seq = info["kind"] == "encoder_decoder"
with open(f"{run}/attention_history.jsonl", "w") as f:
    for i, step in enumerate(steps):
        sharp = 1.0 + 6.0 * i / max(1, len(steps) - 1)
        maps = []
        for a in info["attention"]:
            slot, heads = a["short"], a["n_heads"]
            q = src if slot.startswith("encoder") and seq2seq else tokens
            k = src if ("cross" in slot or slot.startswith("encoder")) and seq2seq else q
            for layer in range(info["model"]["n_layers"]):
                r, c = len(q), len(k)
                logits = -sharp * np.abs(np.arange(r)[:, None] * (c / r) - np.arange(c)[None, :])
                w = np.exp(logits - logits.max(1, keepdims=True))
                w /= w.sum(1, keepdims=True)
                u8 = np.round(255 * np.broadcast_to(w, (heads, r, c))).astype(np.uint8)
                maps.append({"slot": slot, "layer": layer, "heads": heads, "rows": r, "cols": c,
                             "u8": base64.b64encode(u8.tobytes()).decode()})
        f.write(json.dumps({"step": step, "example": {"tokens": tokens, "src_tokens": src if seq2seq else None},
                            "maps": maps}) + "\n")
