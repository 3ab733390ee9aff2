# Sourced by the end-to-end scripts that run Python packages from PyPI:
#   source "$(dirname "$0")/lib/venv.sh"; venv_python "$2" safetensors numpy
# sets py to the repository's .venv/bin/python (scripts/setup.sh makes it) or $ATTNLAB_PYTHON and
# checks that it imports every module named. When it does not: under CI (CI set and not empty)
# the test fails, since CI installs the venv first and a skip there would hide a broken setup;
# elsewhere it exits 77, which ctest counts as skipped (SKIP_RETURN_CODE).
venv_python() {
  local src_dir=$1 mod
  shift
  py="${ATTNLAB_PYTHON:-$src_dir/.venv/bin/python}"
  local why=""
  if [ ! -x "$py" ]; then
    why="$py not found"
  else
    for mod in "$@"; do
      "$py" -c "import $mod" 2>/dev/null || { why="$py cannot import $mod"; break; }
    done
  fi
  [ -z "$why" ] && return 0
  if [ -n "${CI:-}" ]; then
    echo "FAIL: $why (CI runs scripts/setup.sh, which installs it into .venv)" >&2
    exit 1
  fi
  echo "SKIP: $why (run scripts/setup.sh)"
  exit 77
}
