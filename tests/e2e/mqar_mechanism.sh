#!/usr/bin/env bash
# scripts/mqar_mechanism.py (E6b's circuit measurements, read with scripts/torch_model.py from a
# run's checkpoints) on a small MQAR decoder (64 ids, length 32, 4 pairs; the reference choices of
# configs/experiments/e6.yaml), with and without random filler:
# - at GPT-2 initialisation the attention logits are tiny, so every row is nearly uniform: the
#   previous-token weight `prev` of a value position 2i+1 must be the uniform 1/(2i+2) averaged
#   over the 4 pairs (0.2604) within 0.01, and the logit scale std_L0 below 0.1;
# - after training, the script's accuracy on its own examples (drawn in the layout it assumes)
#   must match attnlab's label_acc on its val set within 0.1, and be at least 0.9.
# Label python: needs torch in .venv (tests/e2e/lib/venv.sh). Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"
source "$src/tests/e2e/lib/venv.sh"
venv_python "$src" torch numpy
small=(--set data.n_symbols=64 --set data.max_len=32 --set data.n_pairs=4 --set model.block_size=32
       --set train.warmup_steps=20 --set train.eval_interval=250 --set train.threads=1
       --set model.tie_embeddings=false --set model.head_bias=true --set train.grad_clip=0 --set train.beta2=0.999)
cfg=$src/configs/experiments/e6_mqar.yaml
"$bin" train "$cfg" --run-dir init "${small[@]}" --set model.init=gpt2 --set train.steps=0 >log0 2>&1 ||
  { cat log0; fail "step-0 run failed"; }
for filler in zero random; do
  "$bin" train "$cfg" --run-dir "$filler" "${small[@]}" --set model.init=torch_default --set train.steps=500 \
    --set data.filler=$filler --set train.checkpoint_interval=250 --set train.keep_checkpoints=10 >"log_$filler" 2>&1 ||
    { cat "log_$filler"; fail "training ($filler filler) failed"; }
done
OMP_NUM_THREADS=1 "$py" "$src/scripts/mqar_mechanism.py" zero random --init init/checkpoints/step_0000000.safetensors \
  init/checkpoints/step_0000000.safetensors --examples 128 --csv mech.csv >out.txt 2>&1 || { cat out.txt; fail "the script failed"; }
cat out.txt
"$py" - <<'PY' || fail "the measurements are off (above)"
import csv, json, sys
rows = list(csv.DictReader(open("mech.csv")))
bad = []
for run in ("zero", "random"):
    steps = [int(r["step"]) for r in rows if r["run"] == run]
    if steps != [0, 250, 500]:
        bad.append(f"{run}: steps {steps}, expected [0, 250, 500]")
        continue
    init = next(r for r in rows if r["run"] == run and r["step"] == "0")
    uniform = (1 / 2 + 1 / 4 + 1 / 6 + 1 / 8) / 4
    if abs(float(init["prev"]) - uniform) > 0.01 or float(init["std_L0"]) >= 0.1:
        bad.append(f"{run} at init: prev {init['prev']} (uniform {uniform:.4f}), std_L0 {init['std_L0']}")
    last = next(r for r in rows if r["run"] == run and r["step"] == "500")
    val = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"val"' in l]
    ref = [v["label_acc"] for v in val if v["step"] == 500][0]
    acc = float(last["acc"])
    print(f"{run}: script acc {acc:.3f}, attnlab label_acc {ref:.3f}")
    if acc < 0.9 or abs(acc - ref) > 0.1:
        bad.append(f"{run}: script acc {acc} vs attnlab label_acc {ref}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
echo "mqar_mechanism: ok"
