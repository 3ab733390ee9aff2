# Sourced by the compare scripts (run from the repository root): sets `python`, the interpreter
# with torch ($PYTHON, else the repository's .venv/bin/python when there is one, else
# /usr/bin/python3), and builds `$bin` (attnlab) when it is missing.
if [ -n "${PYTHON:-}" ]; then python=$PYTHON
elif [ -x .venv/bin/python ]; then python=.venv/bin/python
else python=/usr/bin/python3
fi
[ -x "$bin" ] || scripts/build.sh --target attnlab >/dev/null
