#!/usr/bin/env python3
"""scripts/torch_model.py's torch.nn.Module gives attnlab's own logits and attention maps.

Trains a tiny checkpoint per case with the attnlab binary (3 steps at a high learning rate, so
the weights are far from their initialisation and the logits are O(1)), runs
`attnlab inspect CKPT --input TEXT --dump DIR`, and compares DIR/logits.npy and every
DIR/attn_*.npy with the module built from the checkpoint (fp32, PyTorch from PyPI).

Tolerance: max |Δlogits| ≤ 1e-5 · max(1, max |logits|), max |Δweights| ≤ 1e-5. Both sides compute
in float32 (unit roundoff 6e-8) with different summation orders (OpenBLAS / Eigen vs PyTorch) and
attnlab's SIMD tanh; through 2 layers of width ≤ 48 that leaves differences of at most ~4e-7
relative (what the runs show), so 1e-5 has a factor of 25 of headroom. A wrong convention costs
more: the case list ends with checks that the same comparison FAILS when the module uses GELU's
tanh form on an exact-GELU model (the subtlest error: at most ~5e-4 per activation), drops
RoPE, or gives a differential model layer 0's λ_init in every layer. (scripts/torch_model.py's
own default, 1e-4, is looser for deeper and wider models.)

Usage: test_torch_model.py ATTNLAB_BINARY SOURCE_DIR CORPUS   (run with .venv/bin/python)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

TOL = 1e-5
binary, source, corpus = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(source, "scripts"))
import torch_model  # noqa: E402

FAST = ["train.steps=3", "train.batch_size=4", "train.eval_interval=3", "train.eval_batches=1",
        "train.threads=1", "train.lr=0.03", "train.warmup_steps=0", "train.log_interval=1"]
TEXT = [f"data.path={corpus}", "model.n_layers=2", "model.d_model=32", "model.n_heads=4", "model.block_size=32"]
with open(corpus, encoding="utf-8", errors="replace") as f:
    PROMPT = f.read(400).split("\n")[0][:24] or "the"
dec = ("text_decoder", TEXT)
enc = ("text_encoder", TEXT)
TASK = ["data.n_val=8", "model.d_model=32", "model.n_heads=4"]

# name, config in configs/tasks, --set overrides, input
CASES = [
    ("decoder learned", *dec, [], PROMPT),
    ("decoder sinusoidal", *dec, ["model.positions=sinusoidal"], PROMPT),
    ("decoder rope", *dec, ["model.positions=rope", "model.attention.rope_base=100"], PROMPT),
    ("decoder alibi, 6 heads", *dec, ["model.positions=alibi", "model.n_heads=6", "model.d_model=48"], PROMPT),
    ("decoder no positions", *dec, ["model.positions=none"], PROMPT),
    ("decoder GQA", *dec, ["model.attention.n_kv_heads=2"], PROMPT),
    ("decoder MQA, flash kernel", *dec, ["model.attention.n_kv_heads=1", "model.attention.impl=flash"], PROMPT),
    ("decoder window 5 + alibi", *dec, ["model.attention.window=5", "model.positions=alibi"], PROMPT),
    ("decoder post-norm", *dec, ["model.norm=post"], PROMPT),
    ("decoder mlp off", *dec, ["model.mlp=false"], PROMPT),
    ("decoder untied, no bias, exact gelu, scale", *dec,
     ["model.tie_embeddings=false", "model.bias=false", "model.activation=gelu", "model.attention.scale=0.25",
      "model.d_ff=48", "train.lr=0.1"], PROMPT),
    ("decoder torch_default init, untied head with bias", *dec,
     ["model.init=torch_default", "model.tie_embeddings=false", "model.head_bias=true"], PROMPT),
    ("decoder tied head with bias", *dec, ["model.head_bias=true", "model.init=torch_default"], PROMPT),
    ("decoder differential", *dec, ["model.attention.type=differential"], PROMPT),
    ("decoder differential, no norm, GQA, rope", *dec,
     ["model.attention.type=differential", "model.attention.diff_norm=false", "model.attention.n_kv_heads=2",
      "model.positions=rope", "model.attention.rope_base=100"], PROMPT),
    ("decoder differential, window 5, 2 heads", *dec,
     ["model.attention.type=differential", "model.n_heads=2", "model.attention.window=5",
      "model.init=torch_default"], PROMPT),
    ("encoder (MLM) alibi, window 4", *enc, ["model.positions=alibi", "model.attention.window=4"], PROMPT),
    ("encoder classifier, rope, mean pool", "parity_encoder", TASK,
     ["model.positions=rope", "model.pool=mean"], "0110101"),
    ("encoder_decoder cross-attention", "copy_encoder_decoder", TASK,
     ["model.share_embeddings=false", "model.positions=sinusoidal", "model.n_encoder_layers=1",
      "model.decoder.cross_attention.n_kv_heads=2"], "abcdef"),
    ("encoder_decoder bottleneck", "reverse_encoder_decoder", TASK,
     ["model.bottleneck=true", "model.activation=gelu"], "abcd"),
]


def run(args):
    p = subprocess.run([binary] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAIL: attnlab {' '.join(args)} exited {p.returncode}:\n{p.stdout}{p.stderr}")
    return p.stdout


def measure(model, info, dump):
    """(relative logit difference, max attention-weight difference, number of maps compared)."""
    got, weights = torch_model.logits_for_dump(model, info, dump, keep_weights=True)
    want = np.load(os.path.join(dump, "logits.npy"))
    assert want.shape == got.shape, (want.shape, got.shape)
    rel = float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))
    worst, maps = 0.0, 0
    for label, w in weights.items():
        a = np.load(os.path.join(dump, f"attn_{label}.npy"))
        assert a.shape == w.shape, (label, a.shape, w.shape)
        worst, maps = max(worst, float(np.abs(a - w).max())), maps + 1
    return rel, worst, maps, float(np.abs(want).max())


def main():
    tmp = tempfile.mkdtemp(prefix="torch_model.", dir=".")  # the e2e script runs in its own temporary directory
    failures = []
    kept = {}
    for i, (name, base, common, sets, text) in enumerate(CASES):
        rd, dump = os.path.join(tmp, f"r{i}"), os.path.join(tmp, f"d{i}")
        args = ["train", os.path.join(source, "configs", "tasks", base + ".yaml"), "--run-dir", rd]
        for s in FAST + common + sets:
            args += ["--set", s]
        run(args)
        ckpt = os.path.join(rd, "checkpoints", "step_0000003.safetensors")
        run(["inspect", ckpt, "--input", text, "--dump", dump])
        model, info = torch_model.load_model(ckpt)
        rel, worst, maps, scale = measure(model, info, dump)
        ok = rel <= TOL and worst <= TOL and maps > 0
        print(f"{'ok  ' if ok else 'FAIL'} {name:45s} logits rel diff {rel:.2e} (max |logits| {scale:.2f}), "
              f"{maps} attention maps, max diff {worst:.2e}")
        if not ok:
            failures.append(name)
        kept[name] = (model, info, dump)

    # The comparison can fail: the same checks with a deliberately wrong module.
    model, info, dump = kept["decoder untied, no bias, exact gelu, scale"]
    for blk in model.blocks:
        blk.mlp.approximate = "tanh"
    rel, _, _, _ = measure(model, info, dump)
    print(f"{'ok  ' if rel > TOL else 'FAIL'} negative control: tanh GELU on an exact-GELU model differs by {rel:.2e}")
    if rel <= TOL:
        failures.append("gelu negative control")
    model, info, dump = kept["decoder rope"]
    for blk in model.blocks:
        blk.attn.rope_base = None
    rel, worst, _, _ = measure(model, info, dump)
    print(f"{'ok  ' if worst > TOL else 'FAIL'} negative control: without RoPE the maps differ by {worst:.2e}")
    if worst <= TOL:
        failures.append("rope negative control")

    model, info, dump = kept["decoder differential"]
    for blk in model.blocks:
        blk.attn.lambda_init = 0.2  # layer 0's λ_init everywhere: the per-layer schedule dropped
    rel, worst, _, _ = measure(model, info, dump)
    print(f"{'ok  ' if worst > TOL else 'FAIL'} negative control: one λ_init for every layer, the maps differ by {worst:.2e}")
    if worst <= TOL:
        failures.append("differential lambda_init negative control")

    # Outside the family: a clear error, exit 2.
    rd = os.path.join(tmp, "lin")
    run(["train", os.path.join(source, "configs", "tasks", "text_decoder.yaml"), "--run-dir", rd,
         "--set", "model.attention.type=linear"] + [a for s in FAST + TEXT for a in ("--set", s)])
    p = subprocess.run([sys.executable, os.path.join(source, "scripts", "torch_model.py"),
                        os.path.join(rd, "checkpoints", "step_0000003.safetensors"), "--input", PROMPT],
                       capture_output=True, text=True)
    good = p.returncode == 2 and p.stderr.startswith("error: ") and "'linear'" in p.stderr and \
        p.stderr.count("\n") == 1
    print(f"{'ok  ' if good else 'FAIL'} linear attention refused: exit {p.returncode}, {p.stderr.strip()}")
    if not good:
        failures.append("linear refused")
    # The CLI's own comparison (exit 0 and its report line) on one case.
    p = subprocess.run([sys.executable, os.path.join(source, "scripts", "torch_model.py"),
                        os.path.join(tmp, "r0", "checkpoints", "step_0000003.safetensors"), "--dump",
                        os.path.join(tmp, "d0")], capture_output=True, text=True)
    if p.returncode != 0 or "logits" not in p.stdout:
        failures.append(f"CLI --dump: exit {p.returncode}: {p.stdout}{p.stderr}")
    if failures:
        sys.exit("FAIL: " + "; ".join(failures))
    print(f"all {len(CASES)} checkpoints match")


if __name__ == "__main__":
    main()
