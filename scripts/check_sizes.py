#!/usr/bin/env python3
"""The size limits of docs/architecture.md: no source file in src/ over 700 lines, no function over
150 lines. Functions are found by their braces: a `{` at namespace or class level that does not
open a namespace, class, struct, union, enum or an initialiser starts a function body; its length
is counted from the line of its name to the closing `}`. Exceptions are named in ALLOWED with the
reason. Prints every breach and exits 1 if there is one.

  scripts/check_sizes.py [SRC_DIR] [--max-file N] [--max-function N]
"""
import argparse
import pathlib
import re
import sys

# function (module folder:name) -> why it may be longer
ALLOWED = {
    # one table of every config key; splitting it would scatter the schema
    "config:schema": "the config schema table",
}

SUFFIXES = {".h", ".cpp", ".cu", ".cuh"}


def strip_code(text):
    """The text with comments, string and character literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(")" + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (j + 1 - i)); i = j + 1
        else:
            out.append(c); i += 1
    return "".join(out)


def functions(code):
    """(name, first line, last line) of every function body at namespace or class level."""
    stack = []  # kinds of the open braces: "scope" (namespace/class) or "body" / "other"
    found = []
    head_start = 0  # offset after the last ; { } at the current level: where a declaration starts
    for i, c in enumerate(code):
        if c == "{":
            head = code[head_start:i]
            in_scope = all(k == "scope" for k in stack)
            words = head.strip()
            if not in_scope:
                stack.append("other")
            elif re.search(r"\b(namespace|class|struct|union|enum)\b[^()]*$", words) or words.startswith("extern"):
                stack.append("scope")
            elif words.endswith("=") or words.endswith(",") or not words or ")" not in words:
                stack.append("other")  # an initialiser, a table row
            else:
                m = re.search(r"([~\w:]+)\s*\([^()]*(\([^()]*\)[^()]*)*\)[^()]*$", words)
                name = m.group(1) if m else "?"
                first = code.count("\n", 0, head_start + len(head) - len(head.lstrip())) + 1
                stack.append(("body", name, first))
            head_start = i + 1
        elif c == "}":
            if stack:
                k = stack.pop()
                if isinstance(k, tuple):
                    found.append((k[1], k[2], code.count("\n", 0, i) + 1))
            if all(k == "scope" for k in stack):
                head_start = i + 1
        elif c == ";" and all(k == "scope" for k in stack):
            head_start = i + 1
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", default=str(pathlib.Path(__file__).resolve().parent.parent / "src"))
    ap.add_argument("--max-file", type=int, default=700)
    ap.add_argument("--max-function", type=int, default=150)
    a = ap.parse_args()
    src = pathlib.Path(a.src)
    bad = []
    n_files = n_funcs = 0
    for p in sorted(src.rglob("*")):
        if p.suffix not in SUFFIXES or not p.is_file():
            continue
        rel = p.relative_to(src).as_posix()
        text = p.read_text(encoding="utf-8", errors="replace")
        n_files += 1
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        if lines > a.max_file:
            bad.append(f"src/{rel}: {lines} lines (limit {a.max_file})")
        for name, first, last in functions(strip_code(text)):
            n_funcs += 1
            length = last - first + 1
            short = name.split("::")[-1]
            if length > a.max_function and f"{rel.split('/')[0]}:{short}" not in ALLOWED:
                bad.append(f"src/{rel}:{first}: function {name} is {length} lines (limit {a.max_function})")
    for b in bad:
        print(b)
    print(f"check_sizes: {n_files} files, {n_funcs} functions, {len(bad)} over the limits")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
