#!/usr/bin/env bash
# Fetch the text corpora attnlab trains on (they are not stored in the repository).
#
#   scripts/get_data.sh tinyshakespeare [DEST_DIR]
#
# tinyshakespeare: the 1,115,394-byte input.txt of Andrej Karpathy's char-rnn
# repository, saved as DEST_DIR/tinyshakespeare.txt (DEST_DIR defaults to the
# repository's data/ directory). An existing file of the right size is kept.
# The download goes to a temp file, is checked (size, and md5 when md5sum is
# available) and then renamed, so a failed or partial download never leaves a
# file behind.
#
# Note: the tests and benchmarks never download; they read tinyshakespeare.txt
# from the directory named by ATTNLAB_DATA_DIR, or from data/ when it is unset
# (a test that finds no corpus there says so and skips; README.md).
set -euo pipefail

readonly TS_URL="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
readonly TS_SIZE=1115394
readonly TS_MD5="6fb458f1232090904fb40fe944165e91"

usage() {
  cat >&2 <<EOF
usage: $(basename "$0") DATASET [DEST_DIR]

datasets:
  tinyshakespeare   Shakespeare's works, 1115394 bytes (char-rnn input.txt)
                    -> DEST_DIR/tinyshakespeare.txt

DEST_DIR defaults to the repository's data/ directory.
EOF
  exit 2
}

die() {
  echo "error: $*" >&2
  exit 1
}

file_size() { wc -c <"$1" | tr -d ' '; }

download() {  # URL FILE
  if command -v curl >/dev/null 2>&1; then
    curl --fail --location --silent --show-error --retry 3 --output "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget --quiet --tries=3 --output-document="$2" "$1"
  else
    die "neither curl nor wget is installed"
  fi
}

get_tinyshakespeare() {  # DEST_DIR
  local dest_dir=$1
  local dest="$dest_dir/tinyshakespeare.txt"
  if [[ -f "$dest" ]]; then
    local size
    size=$(file_size "$dest")
    if [[ "$size" == "$TS_SIZE" ]]; then
      echo "$dest already present ($size bytes), skipping"
      return 0
    fi
    die "$dest exists but has $size bytes, expected $TS_SIZE; remove it and run again"
  fi

  mkdir -p "$dest_dir"
  local tmp
  tmp=$(mktemp "$dest_dir/.tinyshakespeare.txt.XXXXXX")
  # remove the temp file on any failure or interruption
  trap 'rm -f "$tmp"' EXIT
  echo "downloading $TS_URL"
  download "$TS_URL" "$tmp" || die "download of $TS_URL failed"

  local size
  size=$(file_size "$tmp")
  [[ "$size" == "$TS_SIZE" ]] || die "downloaded file has $size bytes, expected $TS_SIZE"
  if command -v md5sum >/dev/null 2>&1; then
    local md5
    md5=$(md5sum "$tmp" | cut -d' ' -f1)
    [[ "$md5" == "$TS_MD5" ]] || die "downloaded file has md5 $md5, expected $TS_MD5"
  fi
  chmod 644 "$tmp"
  mv -f "$tmp" "$dest"
  trap - EXIT
  echo "wrote $dest ($size bytes)"
}

main() {
  [[ $# -ge 1 && $# -le 2 ]] || usage
  local repo_root
  repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  local dest_dir=${2:-"$repo_root/data"}
  case "$1" in
    tinyshakespeare) get_tinyshakespeare "$dest_dir" ;;
    -h | --help) usage ;;
    *)
      echo "error: unknown dataset '$1'" >&2
      usage
      ;;
  esac
}

main "$@"
