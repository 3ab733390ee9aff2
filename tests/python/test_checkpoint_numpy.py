#!/usr/bin/env python3
"""Checkpoints open with ordinary Python tools, and match docs/checkpoint-format.md.

Trains two tiny decoders with the attnlab binary (one with learned positions,
biases and tied embeddings; one with sinusoidal positions, no biases, an
untied head and grouped KV heads), then, for each:

  --part numpy        parses the files with plain NumPy + json (always available):
                      8-byte header length, JSON header, alignment, contiguous
                      offsets, the FNV-1a checksum, tensor names / order / shapes
                      against the doc's decoder table, and the training-state
                      file (adam.m.* / adam.v.* per parameter, metadata);
  --part safetensors  loads both files with safetensors.numpy.load_file and checks
                      the same names and shapes, and equal values. Without the
                      safetensors module it prints a SKIP line and exits 77
                      (CTest's SKIP_RETURN_CODE).

Usage: test_checkpoint_numpy.py ATTNLAB_BINARY SOURCE_DIR --part numpy|safetensors
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

SKIP = 77


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def flat_yaml(text):
    """The resolved config as {dotted.key: value}: enough YAML for `attnlab config show` output."""
    out, stack = {}, []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        value = value.strip()
        if value == "":
            stack.append((indent, key))
        else:
            out[path] = value.strip('"').strip("'")
    return out


def doc_table(source_dir):
    """Rows (name pattern, shape expression, condition) of the decoder table in the doc."""
    path = os.path.join(source_dir, "docs", "checkpoint-format.md")
    text = open(path, encoding="utf-8").read()
    section = text.split("## Tensors of a `decoder`", 1)
    if len(section) != 2:
        fail(f"{path}: no '## Tensors of a `decoder`' section")
    rows = []
    for line in section[1].split("\n## ", 1)[0].splitlines():
        m = re.match(r"^\| `([^`]+)` \| \[([^\]]*)\] \| ([^|]+) \|", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3).strip()))
    if len(rows) < 10:
        fail(f"{path}: could not read the decoder table ({len(rows)} rows)")
    return rows


def expected_tensors(rows, cfg, vocab_size):
    """[(name, shape)] in file order for this config, from the doc's table."""
    C = int(cfg["model.d_model"])
    H = int(cfg["model.n_heads"])
    F = int(cfg["model.d_ff"]) or 4 * C
    kv = int(cfg.get("model.decoder.self_attention.n_kv_heads", cfg.get("model.attention.n_kv_heads", "0")))
    sym = {"C": C, "F": F, "V": vocab_size, "T": int(cfg["model.block_size"]), "H": H, "D": C // H,
           "Hkv": kv or H}

    def holds(cond):
        if cond == "always":
            return True
        ok = True
        for part in cond.split(","):  # `a: x`, `b: y` - every part must hold
            m = re.fullmatch(r"`(\w+): (\w+)`", part.strip())
            if not m:
                fail(f"doc table: cannot read the condition {cond!r}")
            ok = ok and cfg[f"model.{m.group(1)}"] == m.group(2)
        return ok

    def shape(expr):
        dims = []
        for d in expr.split(","):
            e = d.strip().replace("·", "*")
            dims.append(int(eval(e, {"__builtins__": {}}, dict(sym))))
        return tuple(dims)

    out = []
    layers = int(cfg["model.n_layers"])
    i = 0
    while i < len(rows):
        name, expr, cond = rows[i]
        if "{l}" in name:  # a run of per-layer rows repeats for every layer
            j = i
            while j < len(rows) and "{l}" in rows[j][0]:
                j += 1
            for l in range(layers):
                for n, e, c in rows[i:j]:
                    if holds(c):
                        out.append((n.replace("{l}", str(l)), shape(e)))
            i = j
        else:
            if holds(cond):
                out.append((name, shape(expr)))
            i += 1
    return out


def parse_safetensors(path):
    """(metadata, [(name, shape, array)] in data order, data bytes) with plain NumPy."""
    import numpy as np

    raw = open(path, "rb").read()
    if len(raw) < 8:
        fail(f"{path}: shorter than 8 bytes")
    n = int.from_bytes(raw[:8], "little")
    if (8 + n) % 8:
        fail(f"{path}: data section not 8-byte aligned")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    items = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors, pos = [], 0
    for name, t in items:
        if t["dtype"] != "F32":
            fail(f"{path}: {name} has dtype {t['dtype']}")
        begin, end = t["data_offsets"]
        if begin != pos:
            fail(f"{path}: {name} starts at {begin}, expected {pos} (tensors back to back)")
        count = 1
        for d in t["shape"]:
            count *= d
        if end - begin != 4 * count:
            fail(f"{path}: {name} has {end - begin} bytes for shape {t['shape']}")
        arr = np.frombuffer(data, dtype="<f4", count=count, offset=begin).reshape(t["shape"])
        tensors.append((name, tuple(t["shape"]), arr))
        pos = end
    if pos != len(data):
        fail(f"{path}: {len(data) - pos} bytes after the last tensor")
    return meta, tensors, data


def train(binary, source_dir, run_dir, sets):
    cmd = [binary, "train", os.path.join(source_dir, "configs", "tasks", "reverse_decoder.yaml"), "--run-dir", run_dir,
           "--set", "train.steps=3", "--set", "train.threads=1", "--set", "data.n_val=5",
           "--set", "model.d_model=16", "--set", "model.n_layers=2", "--set", "train.batch_size=2"]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        fail(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr}")
    latest = open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
    return os.path.join(run_dir, "checkpoints", latest)


def check_numpy(ckpt, rows):
    meta, tensors, data = parse_safetensors(ckpt)
    if meta.get("format") != "attnlab":
        fail(f"{ckpt}: metadata format {meta.get('format')!r}")
    for key in ["format_version", "kind", "step", "config", "tokenizer", "vocab_bytes", "checksum_fnv1a64"]:
        if key not in meta:
            fail(f"{ckpt}: metadata lacks {key}")
    if fnv1a64(data) != meta["checksum_fnv1a64"]:
        fail(f"{ckpt}: checksum {fnv1a64(data)} != stored {meta['checksum_fnv1a64']}")
    cfg = flat_yaml(meta["config"])
    vocab = len(meta["vocab_bytes"].split(","))
    want = expected_tensors(rows, cfg, vocab)
    got = [(n, s) for n, s, _ in tensors]
    if got != want:
        missing = [w for w in want if w not in got]
        extra = [g for g in got if g not in want]
        fail(f"{ckpt}: tensors differ from docs/checkpoint-format.md\n  missing or other shape: {missing}\n"
             f"  not in the doc: {extra}\n  order in file: {[n for n, _ in got]}")
    # the training state next to it
    state = ckpt[: -len(".safetensors")] + ".state.safetensors"
    smeta, stensors, sdata = parse_safetensors(state)
    if smeta.get("format") != "attnlab-train-state":
        fail(f"{state}: metadata format {smeta.get('format')!r}")
    if fnv1a64(sdata) != smeta["checksum_fnv1a64"]:
        fail(f"{state}: checksum mismatch")
    want_state = []
    for n, s in want:
        want_state += [("adam.m." + n, s), ("adam.v." + n, s)]
    if [(n, s) for n, s, _ in stensors] != want_state:
        fail(f"{state}: tensors {[n for n, _, _ in stensors]} != {[n for n, _ in want_state]}")
    for key in ["step", "optimizer_t", "rng_data", "rng_dropout", "best_val_loss", "best_step", "kept",
                "model_file", "model_checksum_fnv1a64"]:
        if key not in smeta:
            fail(f"{state}: metadata lacks {key}")
    if smeta["step"] != meta["step"] or smeta["model_checksum_fnv1a64"] != meta["checksum_fnv1a64"]:
        fail(f"{state}: does not match {ckpt}")
    for key in ["rng_data", "rng_dropout"]:
        parts = smeta[key].split(",")
        if len(parts) != 4 or not all(p.isdigit() and int(p) < 2**64 for p in parts):
            fail(f"{state}: {key} = {smeta[key]!r} is not 4 u64")
    for name, _, arr in stensors:
        if name.startswith("adam.v.") and (arr < 0).any():
            fail(f"{state}: {name} has negative second moments")
    print(f"numpy: {os.path.basename(ckpt)}: {len(tensors)} tensors match the doc; state file ok")
    return tensors, stensors


def check_safetensors(ckpt, np_tensors, np_state):
    try:
        from safetensors.numpy import load_file
    except ImportError:
        print("SKIP: the Python module 'safetensors' is not installed (pip install safetensors); "
              "the plain-NumPy check (checkpoint_numpy) still runs")
        sys.exit(SKIP)
    import numpy as np

    for path, ref in [(ckpt, np_tensors), (ckpt[: -len(".safetensors")] + ".state.safetensors", np_state)]:
        w = load_file(path)
        if sorted(w) != sorted(n for n, _, _ in ref):
            fail(f"{path}: safetensors sees {sorted(w)}")
        for name, shape, arr in ref:
            if tuple(w[name].shape) != shape or w[name].dtype != np.float32:
                fail(f"{path}: {name} is {w[name].dtype}{w[name].shape} in safetensors, expected float32{shape}")
            if not np.array_equal(w[name], arr):
                fail(f"{path}: {name} differs between safetensors and the NumPy parse")
    print(f"safetensors: {os.path.basename(ckpt)}: load_file agrees on {len(np_tensors)} tensors and the state file")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("source_dir")
    ap.add_argument("--part", choices=["numpy", "safetensors"], required=True)
    args = ap.parse_args()
    try:
        import numpy  # noqa: F401
    except ImportError:
        fail("NumPy is not installed for this Python (apt install python3-numpy)")
    if args.part == "safetensors":
        try:
            import safetensors  # noqa: F401
        except ImportError:
            print("SKIP: the Python module 'safetensors' is not installed (pip install safetensors); "
                  "the plain-NumPy check (checkpoint_numpy) still runs")
            sys.exit(SKIP)
    rows = doc_table(args.source_dir)
    configs = {
        "learned": [],
        "plain": ["model.positions=sinusoidal", "model.bias=false", "model.tie_embeddings=false",
                  "model.attention.n_kv_heads=2", "model.d_ff=24"],
        "no_mlp": ["model.mlp=false"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, sets in configs.items():
            ckpt = train(args.binary, args.source_dir, os.path.join(tmp, name), sets)
            t, s = check_numpy(ckpt, rows)
            if args.part == "safetensors":
                check_safetensors(ckpt, t, s)
    print(f"python checkpoint test ({args.part}): ok")


if __name__ == "__main__":
    main()
