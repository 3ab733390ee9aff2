"""Checks of `attnlab report`'s page as headless Chromium left it (tests/e2e/report.sh).

  check_page.py dom DOM RUN_DIR DUMP_DIR   the DOM after the page's script ran (--dump-dom):
      the script finished; each curve has as many points as metrics.jsonl has rows (train rows
      with a loss: train loss and lr; val rows: val loss and every val metric); every slot ×
      layer × head of the model (from `attnlab inspect --dump`'s tokens.json) has a map; the
      history slider has one frame per val row and, the page opened at #frame=0, its script has
      put the first evaluation's maps in place (when the run has attention_history.jsonl).
  check_page.py console LOG               Chromium's log (--enable-logging=stderr): no console
      message at all (the page logs nothing; an uncaught error is logged as a console message).
  check_page.py screenshot PNG             the screenshot is not blank: many distinct colours.
Prints what it checked; exits 1 with FAIL: ... on the first problem."""
import json
import os
import re
import sys
from html.parser import HTMLParser


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


class Dom(HTMLParser):
    def __init__(self):
        super().__init__()
        self.section = None
        self.curves = {}
        self.maps = {"maps": set(), "history": set()}
        self.body = {}
        self.slider = None
        self.hrefs = {}
        self.history_json = ""
        self.in_data = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id")
        elif tag == "body":
            self.body = a
        elif tag == "polyline" and "data-series" in a:
            pts = a.get("points", "").split()
            self.curves[a["data-series"]] = (int(a["data-points"]), len(pts))
        elif tag == "svg" and "heatmap" in a.get("class", "") and self.section in self.maps:
            self.maps[self.section].add((a["data-key"], int(a["data-head"])))
        elif tag == "input" and a.get("id") == "history-slider":
            self.slider = a
        elif tag == "image" and self.section == "history":
            self.hrefs[(a["data-key"], int(a["data-head"]))] = a["href"]
        elif tag == "script" and a.get("id") == "history-data":
            self.in_data = True

    def handle_data(self, data):
        if self.in_data:
            self.history_json += data

    def handle_endtag(self, tag):
        if tag == "script":
            self.in_data = False


def dom(path, run, dump):
    d = Dom()
    d.feed(open(path, encoding="utf-8").read())
    if d.body.get("data-report-ready") != "1":
        fail("the page's script did not run to its end (body has no data-report-ready=1)")
    rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    train = [r for r in rows if r.get("split") == "train" and isinstance(r.get("loss"), (int, float))]
    val = [r for r in rows if r.get("split") == "val"]
    want = {"train loss": len(train), "lr": len(train), "val loss": len(val)}
    for r in val:
        for k, v in r.items():
            if k not in ("step", "elapsed_s", "loss", "split") and isinstance(v, (int, float)):
                want[f"val {k}"] = len(val)
    for name, n in want.items():
        if name not in d.curves:
            fail(f"no curve '{name}' (curves: {sorted(d.curves)})")
        attr, drawn = d.curves[name]
        if attr != n or drawn != n:
            fail(f"curve '{name}': data-points {attr}, {drawn} points drawn; metrics.jsonl has {n} rows")
    print(f"curves: {len(want)} ({len(train)} train / {len(val)} val points) match metrics.jsonl")
    tokens = json.load(open(os.path.join(dump, "tokens.json")))
    expect = {(f"{a['slot']}_L{a['layer']}", h) for a in tokens["attention"] for h in range(a["shape"][0])}
    if not expect:
        fail("tokens.json lists no attention map")
    if d.maps["maps"] != expect:
        fail(f"best-checkpoint maps: missing {sorted(expect - d.maps['maps'])}, extra {sorted(d.maps['maps'] - expect)}")
    print(f"maps: all {len(expect)} slot x layer x head maps present")
    if os.path.exists(os.path.join(run, "attention_history.jsonl")):
        if d.maps["history"] != expect:
            fail(f"history maps: missing {sorted(expect - d.maps['history'])}")
        frames = int(d.body.get("data-history-frames", "-1"))
        if frames != len(val) or int(d.slider["max"]) + 1 != len(val):
            fail(f"history: {frames} frames, slider max {d.slider['max']}; metrics.jsonl has {len(val)} val rows")
        print(f"history: slider with {frames} frames = val rows, {len(d.maps['history'])} maps")
        # opened at #frame=0, the script has swapped every history map to the first evaluation's
        first = json.loads(d.history_json)["frames"][0]["maps"]
        for (key, head), href in d.hrefs.items():
            if href != "data:image/png;base64," + first[key][head]:
                fail(f"history map {key} head {head} does not show frame 0 (the slider's script did not swap it)")
        print(f"history: the script swapped all {len(d.hrefs)} maps to frame 0")


def console(path):
    bad = [l for l in open(path, errors="replace") if ":CONSOLE" in l or "Uncaught" in l]
    if bad:
        fail("console messages: " + " | ".join(l.strip() for l in bad[:5]))
    print("console: no message")


def screenshot(path):
    import numpy as np
    from matplotlib import image
    img = image.imread(path)
    px = (img[..., :3] * 255).round().astype(np.uint32).reshape(-1, 3)
    colours = len(np.unique(px[:, 0] << 16 | px[:, 1] << 8 | px[:, 2]))
    ink = float((px.min(1) < 235).mean())
    if colours < 64 or ink < 0.02:
        fail(f"screenshot {path} looks blank: {colours} colours, {ink:.1%} of pixels not near white")
    print(f"screenshot: {img.shape[1]}x{img.shape[0]}, {colours} colours, {ink:.0%} ink")


if __name__ == "__main__":
    {"dom": dom, "console": console, "screenshot": screenshot}[sys.argv[1]](*sys.argv[2:])
