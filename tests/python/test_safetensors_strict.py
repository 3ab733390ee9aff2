#!/usr/bin/env python3
"""attnlab rejects at least every malformed safetensors file the reference package rejects.

Trains a tiny decoder with the attnlab binary, then derives from its checkpoint a set of files,
each breaking one rule of the format (overlapping / out-of-order / out-of-range offsets, holes,
duplicate names, a header over 100 MB, invalid UTF-8, a size that disagrees with dtype and
shape, truncation, bad dtype strings, negative / float offsets, a __metadata__ that is not a
string map, ...). Files whose data changes get a recomputed checksum, so attnlab has to notice
the defect itself rather than a checksum mismatch. Each file goes to
safetensors.numpy.load_file and to `attnlab inspect FILE`; the table of both verdicts is
printed. The test fails when
  - attnlab accepts a file that safetensors rejects,
  - attnlab rejects without exactly one `error: ` line naming the file, or with an exit status
    other than 2,
  - attnlab's message does not mention the defect (a word expected for each case), or
  - the unmodified checkpoint is not accepted by both.

Usage: test_safetensors_strict.py ATTNLAB_BINARY SOURCE_DIR   (run with .venv/bin/python)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

SKIP = 77

try:
    from safetensors.numpy import load_file
except ImportError:
    print("SKIP: the safetensors module is missing (run scripts/setup.sh, then use .venv/bin/python)")
    sys.exit(SKIP)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def split(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def assemble(header, data, fix_checksum=True):
    """A file from a header (dict or raw bytes) and a data section; recomputes the checksum."""
    if isinstance(header, dict):
        header = json.loads(json.dumps(header))
        if fix_checksum and "__metadata__" in header and isinstance(header["__metadata__"], dict):
            header["__metadata__"]["checksum_fnv1a64"] = fnv1a64(data)
        header = json.dumps(header).encode()
    return struct.pack("<Q", len(header)) + header + data


def by_offset(header):
    return sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])


def cases(blob):
    """(name, file bytes, a word attnlab's error must contain)"""
    h, d = split(blob)
    names = by_offset(h)
    first, second, last = names[0], names[1], names[-1]
    out = [("valid", blob, None)]

    def edit(fn):
        x = json.loads(json.dumps(h))
        fn(x)
        return x

    def shift(x, name, delta):
        b, e = x[name]["data_offsets"]
        x[name]["data_offsets"] = [b + delta, e + delta]

    out.append(("overlap", assemble(edit(lambda x: shift(x, second, -4)), d), "overlap"))
    out.append(("offsets_reversed",
                assemble(edit(lambda x: x[first].update(data_offsets=x[first]["data_offsets"][::-1])), d),
                "data_offsets"))
    b0, e0 = h[first]["data_offsets"]
    b1, e1 = h[second]["data_offsets"]
    # two tensors of one size swap places in the data section: offsets no longer in the header's
    # order, still an exact tiling (valid)
    sizes = {}
    for k in names:
        b, e = h[k]["data_offsets"]
        sizes.setdefault(e - b, []).append(k)
    pair = next((ks[:2] for ks in sizes.values() if len(ks) >= 2), None)
    if pair:
        p, q = pair
        out.append(("swapped_places_valid",
                    assemble(edit(lambda x: (x[p].update(data_offsets=h[q]["data_offsets"]),
                                             x[q].update(data_offsets=h[p]["data_offsets"]))), d), None))
    out.append(("out_of_range", assemble(edit(lambda x: shift(x, last, 4)), d), "data section"))
    out.append(("huge_offsets", assemble(edit(lambda x: x[last].update(data_offsets=[2**63, 2**63 + 4])), d),
                "data"))

    def hole(x):
        for k in names[1:]:
            shift(x, k, 4)
    out.append(("hole", assemble(edit(hole), d[:e0] + b"\0\0\0\0" + d[e0:]), "belong to no tensor"))
    out.append(("trailing_bytes", assemble(h, d + b"\0" * 8), "belong to no tensor"))
    out.append(("missing_tensor_bytes", assemble(edit(lambda x: x.pop(second)), d), "belong to no tensor"))

    raw = json.dumps(h).encode()
    dup_entry = json.dumps({first: h[first]})[1:-1].encode()
    out.append(("duplicate_name", assemble(b"{" + dup_entry + b"," + raw[1:], d), "repeats"))
    meta = json.dumps(h["__metadata__"]).encode()
    dup_meta = raw.replace(meta, meta[:-1] + b', "format": "attnlab"}')
    out.append(("duplicate_metadata_key", assemble(dup_meta, d), "repeats"))

    out.append(("header_over_100MB", struct.pack("<Q", 100_000_001) + b"{}" + b" " * 64, "limit"))
    out.append(("header_longer_than_file", struct.pack("<Q", len(blob)) + blob[8:], "exceeds"))
    bad_utf8 = raw.replace(b'"format": "attnlab"', b'"format": "attnlab\xff"')
    out.append(("invalid_utf8", assemble(bad_utf8, d), "UTF-8"))
    out.append(("overlong_utf8", assemble(raw.replace(b'"format": "attnlab"', b'"format": "attnlab\xc0\xaf"'), d),
                "UTF-8"))

    def grow(x):
        x[first]["shape"] = x[first]["shape"][:-1] + [x[first]["shape"][-1] + 1]
    out.append(("shape_disagrees", assemble(edit(grow), d), "need"))
    out.append(("dtype_size_disagrees", assemble(edit(lambda x: x[first].update(dtype="F64")), d), "need"))
    out.append(("dtype_f16_valid_layout",
                assemble(edit(lambda x: x[first].update(dtype="F16", shape=x[first]["shape"] + [2])), d), "F32"))
    out.append(("huge_shape", assemble(edit(lambda x: x[first].update(shape=[10**6, 10**6])), d), "need"))
    out.append(("overflowing_shape", assemble(edit(lambda x: x[first].update(shape=[2**40, 2**40, 2**40])), d),
                "need"))
    out.append(("truncated_10_bytes", blob[:-10], "data section"))
    out.append(("truncated_in_header", blob[:40], "exceeds"))
    out.append(("truncated_in_length", blob[:5], "truncated"))
    out.append(("empty_file", b"", "truncated"))
    out.append(("dtype_unknown", assemble(edit(lambda x: x[first].update(dtype="F31")), d), "dtype"))
    out.append(("dtype_lowercase", assemble(edit(lambda x: x[first].update(dtype="f32")), d), "dtype"))
    out.append(("dtype_number", assemble(edit(lambda x: x[first].update(dtype=32)), d), "dtype"))
    out.append(("negative_offset",
                assemble(edit(lambda x: x[first].update(data_offsets=[-4, e0 - 4])), d), "non-negative"))
    out.append(("float_offsets",
                assemble(edit(lambda x: x[first].update(data_offsets=[float(b0), float(e0)])), d), "non-negative"))
    out.append(("three_offsets", assemble(edit(lambda x: x[first].update(data_offsets=[b0, e0, e0])), d),
                "data_offsets"))
    out.append(("negative_dim", assemble(edit(lambda x: x[first].update(shape=[-1] + x[first]["shape"])), d),
                "non-negative"))
    out.append(("float_dim", assemble(edit(lambda x: x[first].update(shape=[1.5])), d), "non-negative"))
    out.append(("missing_dtype", assemble(edit(lambda x: x[first].pop("dtype")), d), "dtype"))
    out.append(("tensor_not_object", assemble(edit(lambda x: x.update({first: [1, 2]})), d), "object"))
    out.append(("nested_metadata",
                assemble(edit(lambda x: x["__metadata__"].update(nested={"a": "b"})), d), "__metadata__"))
    out.append(("metadata_number", assemble(edit(lambda x: x["__metadata__"].update(step=3)), d), "__metadata__"))
    out.append(("metadata_list", assemble(edit(lambda x: x.update(__metadata__=["format", "attnlab"])), d),
                "__metadata__"))
    out.append(("header_array", assemble(b"[]", d), "object"))
    out.append(("header_leading_space", assemble(b" " + raw, d), "object"))
    out.append(("header_not_json", assemble(raw[:-3], d), "JSON"))
    out.append(("header_empty", assemble(b"", d), "object"))
    return out


def main():
    binary, source_dir = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="attnlab-strict-") as tmp:
        run_dir = os.path.join(tmp, "run")
        cmd = [binary, "train", os.path.join(source_dir, "configs", "tasks", "reverse_decoder.yaml"),
               "--run-dir", run_dir, "--set", "train.steps=2", "--set", "train.threads=1", "--set", "data.n_val=5",
               "--set", "model.d_model=16", "--set", "model.n_layers=1", "--set", "train.batch_size=2"]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            print(f"FAIL: training the tiny model failed:\n{r.stderr}", file=sys.stderr)
            return 1
        latest = open(os.path.join(run_dir, "checkpoints", "latest")).read().strip()
        blob = open(os.path.join(run_dir, "checkpoints", latest), "rb").read()

        problems = []
        rows = []
        for name, content, word in cases(blob):
            path = os.path.join(tmp, name + ".safetensors")
            with open(path, "wb") as f:
                f.write(content)
            try:
                load_file(path)
                py_ok, py_msg = True, ""
            except Exception as e:  # the reference raises SafetensorError and others
                py_ok, py_msg = False, str(e).splitlines()[0] if str(e) else type(e).__name__
            a = subprocess.run([binary, "inspect", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, errors="replace")
            at_ok = a.returncode == 0
            errors = [line for line in a.stderr.splitlines() if line.strip()]
            msg = errors[-1] if errors else ""
            rows.append((name, "accept" if py_ok else "reject", "accept" if at_ok else f"reject ({a.returncode})",
                         msg if not at_ok else "", py_msg))
            if not py_ok and at_ok:
                problems.append(f"{name}: safetensors rejects ({py_msg}) but attnlab accepts")
            if at_ok and word is not None:
                problems.append(f"{name}: attnlab accepts a file that breaks the format")
            if not at_ok:
                if a.returncode != 2 or len(errors) != 1 or not errors[0].startswith("error: ") or path not in errors[0]:
                    problems.append(f"{name}: expected exit 2 and one 'error: ...' line naming the file, got "
                                    f"exit {a.returncode} and {errors!r}")
                if word is None:
                    problems.append(f"{name}: attnlab rejects a valid file: {msg}")
                elif word not in msg:
                    problems.append(f"{name}: attnlab's error does not mention '{word}': {msg}")
            if word is None and not py_ok:
                problems.append(f"{name}: the reference rejects the control file: {py_msg}")

        w = max(len(r[0]) for r in rows)
        print(f"{'file':<{w}}  {'safetensors':<11}  {'attnlab':<12}  attnlab's error")
        for name, py, at, msg, _ in rows:
            print(f"{name:<{w}}  {py:<11}  {at:<12}  {msg.replace(tmp + '/', '')[:150]}")
        both = sum(1 for r in rows if r[1] == "reject" and r[2].startswith("reject"))
        only = sum(1 for r in rows if r[1] == "accept" and r[2].startswith("reject"))
        print(f"{len(rows)} files: both reject {both}, only attnlab rejects {only}")
        if problems:
            for p in problems:
                print(f"FAIL: {p}", file=sys.stderr)
            return 1
        print("ok: attnlab rejects every file the reference rejects")
        return 0


if __name__ == "__main__":
    sys.exit(main())
