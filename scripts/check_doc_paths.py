#!/usr/bin/env python3
"""Docs name files that exist: every path under src/, tests/, scripts/, configs/, cmake/ or docs/
written in README.md or docs/*.md must be in the repository (a path may hold a glob, `*`,
`{a,b}` alternatives, or a `<placeholder>`, which matches anything). Prints each stale mention as file:line and exits 1 if there is one.

  scripts/check_doc_paths.py [REPO_DIR]
"""
import glob
import pathlib
import re
import sys

PATH = re.compile(r"(?<![\w./-])((?:src|tests|scripts|configs|cmake|docs)/[\w./*{},<>-]*[\w*}>])")


def expand(p):
    m = re.search(r"\{([^{}]*)\}", p)
    if not m:
        return [re.sub(r"<[^<>]*>", "*", p)]
    return [x for alt in m.group(1).split(",") for x in expand(p[:m.start()] + alt + p[m.end():])]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    docs = [root / "README.md"] + sorted((root / "docs").glob("*.md"))
    bad = []
    for d in docs:
        for n, line in enumerate(d.read_text(encoding="utf-8").splitlines(), 1):
            for m in PATH.finditer(line):
                p = m.group(1).rstrip(".,")
                if not all(glob.glob(str(root / x)) for x in expand(p)):
                    bad.append(f"{d.relative_to(root)}:{n}: {p} does not exist")
    for b in bad:
        print(b)
    print(f"check_doc_paths: {len(docs)} files, {len(bad)} stale paths")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
