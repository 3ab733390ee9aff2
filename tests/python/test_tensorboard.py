#!/usr/bin/env python3
"""The TensorBoard events file and attention_history.jsonl of `attnlab train`, read with
TensorBoard's own code (docs/tensorboard.md).

1. A tiny character decoder trains 20 steps (evaluations every 5, checkpoints at 10 and 20).
   Its run directory is loaded with tensorboard's EventAccumulator (everything kept, no purging
   of out-of-order steps, so that a repeated step would show): every scalar tag holds exactly
   the steps and values of metrics.jsonl's rows, the text tag `config` holds config.yaml, each
   attention slot and layer has one PNG image per evaluation, and attention_history.jsonl has
   one line per evaluation whose maps decode to rows summing to 1 (u8 rounding). Every record's
   masked CRC-32C is checked with tensorboard's own function, and the maps of the last step are
   compared with those `attnlab inspect --dump` writes for the same text and checkpoint.
2. The run is set back to its step-10 checkpoint (as if it had been killed during the final
   save: the files hold rows past step 10) and resumed to step 30: no (tag, step) appears twice
   in the events files, no step twice in attention_history.jsonl, and step 1 again agrees.
3. A tiny encoder_decoder (dates): its source tokens, the three slots, and inspect --dump again.
4. train.attention_maps false: no images and an empty attention_history.jsonl.

Usage: test_tensorboard.py ATTNLAB_BINARY SOURCE_DIR CORPUS
"""
import base64
import collections
import glob
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from tensorboard.backend.event_processing import event_accumulator as ea_mod
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


BIN, SRC, CORPUS = sys.argv[1], sys.argv[2], sys.argv[3]


def run(*args):
    p = subprocess.run([BIN, *args], capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"attnlab {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def rows_of(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def expected_scalars(rows):
    """tag -> [(step, value)] the way docs/tensorboard.md maps metrics rows."""
    out = collections.defaultdict(list)
    for r in rows:
        if r.get("skipped"):
            continue
        for k, v in r.items():
            if k in ("step", "elapsed_s") or isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            out[f"{r['split']}/{k}"].append((r["step"], v))
    return out


def accumulator(run_dir):
    acc = ea_mod.EventAccumulator(
        run_dir,
        size_guidance={ea_mod.SCALARS: 0, ea_mod.IMAGES: 0, ea_mod.TENSORS: 0},
        purge_orphaned_data=False,  # keep repeated steps visible instead of hiding them
    )
    acc.Reload()
    return acc


def events_files(run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))
    check(len(files) == 1, f"{run_dir}: expected one events file, found {files}")
    return files


def check_crcs(path):
    """Every record's framing, checked with tensorboard's masked_crc32c; returns the record count."""
    data = open(path, "rb").read()
    at = n = 0
    while at < len(data):
        check(len(data) - at >= 16, f"{path}: torn record at byte {at}")
        (length,) = struct.unpack_from("<Q", data, at)
        (len_crc,) = struct.unpack_from("<I", data, at + 8)
        check(len_crc == masked_crc32c(data[at : at + 8]), f"{path}: length CRC of record {n}")
        body = data[at + 12 : at + 12 + length]
        (body_crc,) = struct.unpack_from("<I", data, at + 12 + length)
        check(body_crc == masked_crc32c(body), f"{path}: data CRC of record {n}")
        at += 16 + length
        n += 1
    return n


def tag_step_counts(run_dir):
    """(tag, step) -> records, over every events file, read with tensorboard's event file loader."""
    counts = collections.Counter()
    first = True
    for path in events_files(run_dir):
        for ev in event_file_loader.LegacyEventFileLoader(path).Load():
            if first:
                check(ev.file_version == "brain.Event:2", f"first record: {ev}")
                first = False
                continue
            for v in ev.summary.value:
                counts[(v.tag, ev.step)] += 1
    return counts


def decode_maps(line):
    out = []
    for m in line["maps"]:
        u8 = np.frombuffer(base64.b64decode(m["u8"]), dtype=np.uint8)
        check(u8.size == m["heads"] * m["rows"] * m["cols"], f"step {line['step']}: {m['slot']} size")
        out.append((m, u8.reshape(m["heads"], m["rows"], m["cols"])))
    return out


def check_run(run_dir, slots):
    rows = rows_of(run_dir)
    acc = accumulator(run_dir)
    tags = acc.Tags()
    want = expected_scalars(rows)
    check(sorted(tags["scalars"]) == sorted(want), f"scalar tags {sorted(tags['scalars'])} vs {sorted(want)}")
    for tag, pts in want.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        check([s for s, _ in got] == [s for s, _ in pts], f"{tag}: steps {[s for s, _ in got]} vs {[s for s, _ in pts]}")
        for (s, gv), (_, wv) in zip(got, pts):
            check(gv == np.float32(wv), f"{tag} step {s}: {gv} vs {wv} in metrics.jsonl")
    check(acc.PluginTagToContent("text").keys() >= {"config"}, f"text tags: {acc.PluginTagToContent('text')}")
    config = acc.Tensors("config")[-1].tensor_proto.string_val[0].decode()
    check(config == open(os.path.join(run_dir, "config.yaml")).read(), "the config text is not config.yaml")
    val_steps = [r["step"] for r in rows if r["split"] == "val"]
    with open(os.path.join(run_dir, "attention_history.jsonl")) as f:
        hist = [json.loads(line) for line in f]
    check([h["step"] for h in hist] == val_steps, f"history steps {[h['step'] for h in hist]} vs val {val_steps}")
    want_images = sorted(f"attention/{s}_L{l}" for s in slots for l in range(2))
    check(sorted(tags["images"]) == want_images, f"image tags {tags['images']} vs {want_images}")
    from PIL import Image

    for tag in want_images:
        imgs = acc.Images(tag)
        check([i.step for i in imgs] == val_steps, f"{tag}: image steps {[i.step for i in imgs]} vs {val_steps}")
        for im in imgs:
            pic = Image.open(io.BytesIO(im.encoded_image_string))
            check(pic.size == (im.width, im.height) and pic.mode == "L", f"{tag}: {pic.size} {pic.mode}")
    for h in hist:
        maps = decode_maps(h)
        check(sorted(f"attention/{m['slot']}_L{m['layer']}" for m, _ in maps) == want_images, "history slots")
        for m, a in maps:
            sums = a.astype(np.float64).sum(axis=2) / 255.0
            check(np.all(np.abs(sums - 1) <= 0.5 * m["cols"] / 255 + 1e-9), f"step {h['step']} {m['slot']}: row sums {sums}")
    # the image of the last evaluation is the map: head 0's first cell is its top-left pixel
    m, a = decode_maps(hist[-1])[0]
    pic = np.array(Image.open(io.BytesIO(acc.Images(f"attention/{m['slot']}_L{m['layer']}")[-1].encoded_image_string)))
    check(pic[0, 0] == a[0, 0, 0] and pic.shape[0] % m["rows"] == 0, "the image does not show the map")
    counts = tag_step_counts(run_dir)
    dup = [k for k, c in counts.items() if c > 1]
    check(not dup, f"{run_dir}: repeated (tag, step) in the events: {dup[:5]}")
    check(check_crcs(events_files(run_dir)[0]) == sum(counts.values()) + 1, "record count")
    return rows, hist


def check_dump(run_dir, step, hist_line, text):
    """The maps of `step` equal those inspect --dump writes for the same text (within u8 rounding)."""
    dump = os.path.join(run_dir, "..", f"dump_{os.path.basename(run_dir)}")
    ckpt = os.path.join(run_dir, "checkpoints", f"step_{step:07d}.safetensors")
    run("inspect", ckpt, "--input", text, "--dump", dump)
    for m, a in decode_maps(hist_line):
        ref = np.load(os.path.join(dump, f"attn_{m['slot']}_L{m['layer']}.npy"))
        check(ref.shape == a.shape, f"{m['slot']} L{m['layer']}: shape {a.shape} vs inspect's {ref.shape}")
        diff = np.abs(a.astype(np.float64) / 255 - ref).max()
        check(diff <= 0.5 / 255 + 1e-5, f"{m['slot']} L{m['layer']}: differs from inspect --dump by {diff}")


def main(tmp):
    run_dir = os.path.join(tmp, "text")
    small = ["--set", "model.d_model=32", "--set", "model.n_layers=2", "--set", "model.n_heads=2",
             "--set", "model.block_size=24", "--set", "train.batch_size=4", "--set", "train.threads=1",
             "--set", "train.eval_batches=1", "--set", "train.log_interval=2", "--set", "train.eval_interval=5",
             "--set", "train.checkpoint_interval=10", "--set", "train.keep_checkpoints=3", "--set", "train.steps=20"]
    run("train", os.path.join(SRC, "configs/shakespeare_char.yaml"), "--run-dir", run_dir,
        "--set", f"data.path={CORPUS}", *small)
    rows, hist = check_run(run_dir, ["decoder_self"])
    check([h["step"] for h in hist] == [5, 10, 15, 20], f"evaluations: {[h['step'] for h in hist]}")
    tokens = hist[-1]["example"]["tokens"]
    check(len(tokens) == 24 and hist[-1]["example"]["src_tokens"] is None, f"example: {hist[-1]['example']}")
    check_dump(run_dir, 20, hist[-1], "".join(tokens))
    early = [(r["step"], r["loss"]) for r in rows if r["split"] == "train" and r["step"] <= 10]

    # resume from step 10 with rows up to 20 on disk, to step 30
    with open(os.path.join(run_dir, "checkpoints", "latest"), "w") as f:
        f.write("step_0000010.safetensors\n")
    run("train", "--resume", run_dir, "--set", "train.steps=30")
    rows2, hist2 = check_run(run_dir, ["decoder_self"])
    check([h["step"] for h in hist2] == [5, 10, 15, 20, 25, 30], f"after resume: {[h['step'] for h in hist2]}")
    check(hist2[:2] == hist[:2], "the lines up to the resumed step changed")
    check([(r["step"], r["loss"]) for r in rows2 if r["split"] == "train" and r["step"] <= 10] == early,
          "the rows up to step 10 changed")
    texts = [t.step for t in accumulator(run_dir).Tensors("config")]
    check(texts == [0, 10], f"config texts at steps {texts} (0, and 10 where the resume changed train.steps)")

    # an encoder_decoder: three slots, the source tokens, and inspect --dump on the source
    s2s = os.path.join(tmp, "dates")
    run("train", os.path.join(SRC, "configs/default.yaml"), "--run-dir", s2s,
        "--set", "model.d_model=16", "--set", "model.n_heads=2", "--set", "train.batch_size=4",
        "--set", "train.threads=1", "--set", "train.steps=4", "--set", "train.eval_interval=2",
        "--set", "train.eval_batches=1", "--set", "data.n_val=4", "--set", "train.log_interval=1")
    _, h = check_run(s2s, ["decoder_cross", "decoder_self", "encoder_self"])
    src = h[-1]["example"]["src_tokens"]
    check(src and all(len(t) == 1 for t in src), f"source tokens: {src}")
    check_dump(s2s, 4, h[-1], "".join(src))

    # train.attention_maps false: scalars only
    off = os.path.join(tmp, "off")
    run("train", os.path.join(SRC, "configs/shakespeare_char.yaml"), "--run-dir", off,
        "--set", f"data.path={CORPUS}", *small, "--set", "train.steps=5", "--set", "train.attention_maps=false")
    tags = accumulator(off).Tags()
    check(tags["images"] == [] and "val/loss" in tags["scalars"], f"maps off: {tags}")
    check(os.path.getsize(os.path.join(off, "attention_history.jsonl")) == 0, "maps off: history not empty")
    print("ok: tensorboard events and attention history agree with metrics.jsonl, inspect --dump and a resume")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="attnlab_tb_") as d:
        main(d)
