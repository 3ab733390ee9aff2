#!/usr/bin/env bash
# End to end: train.grad_accum through the CLI (docs/distributed.md).
#   a bad value (0, or one that does not divide train.batch_size) -> exit 2 and exactly one
#     `error:` line with the file:line:col of the key (or the --set that gave it);
#   K = 2 trains: its train.log says how the batch is split, the train loss falls, and its
#     config.yaml records the key, which a K = 1 run's config.yaml does not.
# Args: ATTNLAB_BINARY SOURCE_DIR
set -euo pipefail
source "$(dirname "$0")/lib/common.sh" "$@"

# one `error:` line on stderr and no other non-empty line, exit 2; the line must contain $1
expect_error() {
  local want=$1
  shift
  local rc=0
  "$bin" "$@" >out 2>err || rc=$?
  [ "$rc" = 2 ] || { cat out err; fail "$*: exit $rc, expected 2"; }
  [ "$(grep -c '^error: ' err)" = 1 ] || { cat err; fail "$*: expected one error line"; }
  [ "$(grep -c . err)" = 1 ] || { cat err; fail "$*: more than the error line on stderr"; }
  grep -qF -e "$want" err || { cat err; fail "$*: the error does not say '$want'"; }
}

cat >bad.yaml <<'EOF'
model: {n_layers: 1, d_model: 16, n_heads: 2, block_size: 16}
data: {task: reverse, n_symbols: 4, min_len: 2, max_len: 5, n_val: 20}
train:
  batch_size: 8
  grad_accum: 3
EOF
expect_error "bad.yaml:5:15: key 'train.grad_accum': expected a divisor of train.batch_size (8), got 3" \
  train bad.yaml --run-dir r
expect_error "--set train.grad_accum=0: key 'train.grad_accum': expected an integer in [1, 1048576], got 0" \
  train bad.yaml --run-dir r --set train.grad_accum=0
[ ! -e r ] || fail "a rejected config created the run directory"

sed 's/grad_accum: 3/grad_accum: 2/' bad.yaml >good.yaml
cat >>good.yaml <<'EOF'
  steps: 60
  lr: 0.003
  warmup_steps: 5
  log_interval: 10
  eval_interval: 0
  threads: 1
EOF
"$bin" train good.yaml --run-dir k2 >/dev/null
grep -q "2 micro-batches of 4" k2/train.log || fail "train.log does not say how the batch is split"
grep -q "grad_accum: 2" k2/config.yaml || fail "config.yaml does not record train.grad_accum"
/usr/bin/python3 - k2/metrics.jsonl <<'PY' || fail "the K = 2 train loss did not fall"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
loss = [r["loss"] for r in rows if r["split"] == "train"]
print("K=2 train loss:", " ".join(f"{v:.3f}" for v in loss))
sys.exit(0 if len(loss) >= 5 and loss[-1] < 0.9 * loss[0] else 1)
PY
"$bin" train good.yaml --run-dir k1 --set train.grad_accum=1 --set train.steps=2 >/dev/null
if grep -q grad_accum k1/config.yaml; then fail "a K = 1 config.yaml names train.grad_accum"; fi
echo "grad_accum e2e: ok"
