"""Compares two run directories of the same config bit for bit, wall-clock fields aside.

python3 compare_runs.py REFERENCE RUN [LABEL]: the metrics rows (metrics.jsonl without
elapsed_s and tokens_per_s; metrics.csv without those two columns), config.yaml, the list of
files in checkpoints/, `latest`, and every .safetensors file there: the header (elapsed_s
aside) and the raw tensor bytes, i.e. the weights and the AdamW moments. Prints what differs
and exits 1, or prints one summary line and exits 0. Used by tests/e2e/crash*.sh.
"""
import json
import os
import struct
import sys

ref, run = sys.argv[1], sys.argv[2]
label = sys.argv[3] if len(sys.argv) > 3 else "run"
bad = []


def rows(path):
    out = []
    for line in open(path, "rb").read().decode().split("\n")[:-1]:
        r = json.loads(line)
        r.pop("elapsed_s", None)
        r.pop("tokens_per_s", None)
        out.append(json.dumps(r, sort_keys=True))
    return out


def csv(path):  # columns 6 and 7 are tokens_per_s and elapsed_s
    out = []
    for line in open(path).read().split("\n")[:-1]:
        c = line.split(",")
        out.append(c[:5] + c[7:])
    return out


def safetensors(path):
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    header.get("__metadata__", {}).pop("elapsed_s", None)
    return header, blob[8 + n:]


a, b = rows(f"{ref}/metrics.jsonl"), rows(f"{run}/metrics.jsonl")
if a != b:
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    bad.append(f"metrics.jsonl: {len(a)} vs {len(b)} rows; first difference at row {i}: "
               f"{a[i] if i < len(a) else None} vs {b[i] if i < len(b) else None}")
if csv(f"{ref}/metrics.csv") != csv(f"{run}/metrics.csv"):
    bad.append("metrics.csv differs")
if open(f"{ref}/config.yaml", "rb").read() != open(f"{run}/config.yaml", "rb").read():
    bad.append("config.yaml differs")
la, lb = sorted(os.listdir(f"{ref}/checkpoints")), sorted(os.listdir(f"{run}/checkpoints"))
if la != lb:
    bad.append(f"checkpoint directories differ: {la} vs {lb}")
tensors = 0
for f in la:
    if f not in lb or not f.endswith(".safetensors"):
        continue
    (ha, da), (hb, db) = safetensors(f"{ref}/checkpoints/{f}"), safetensors(f"{run}/checkpoints/{f}")
    if ha != hb:
        bad.append(f"{f}: headers differ")
    if da != db:
        bad.append(f"{f}: tensor bytes differ")
    tensors += len(ha) - 1
if "latest" in la and "latest" in lb:
    if open(f"{ref}/checkpoints/latest").read() != open(f"{run}/checkpoints/latest").read():
        bad.append("latest differs")
for m in bad:
    print("  " + m)
if not bad:
    print(f"{label}: equal to the reference: {len(a)} metrics rows, {len(la)} checkpoint files "
          f"({tensors} tensors: weights and AdamW moments)")
sys.exit(1 if bad else 0)
