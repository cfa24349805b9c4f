#!/bin/sh
# check_format.sh -- fails when clang-format (the checked-in .clang-format) would change any
# tracked C file or header; skips, saying so, when clang-format is not installed.
# Usage: check_format.sh [SOURCE_DIR] (default: this file's parent's parent).
root=${1:-${0%/*}/..}
cd "$root" || exit 1
if ! command -v clang-format >/dev/null 2>&1; then
    echo "check_format: SKIPPED: clang-format not found (apt-get install clang-format)"
    exit 77
fi
# Tracked files in a git checkout; elsewhere (a source tarball) every C file outside build trees.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files '*.c' '*.h')
else
    files=$(find . \( -name 'build*' -o -name '.git' \) -prune -o \( -name '*.c' -o -name '*.h' \) -print)
fi
[ -n "$files" ] || { echo "check_format: no C files found under $root"; exit 1; }
# shellcheck disable=SC2086 # one file name a word: none has spaces
if clang-format --dry-run -Werror $files; then
    echo "check_format: $(echo "$files" | wc -l) files formatted as .clang-format says ($(clang-format --version))"
else
    echo "check_format: the files above differ from .clang-format; run clang-format -i on them"
    exit 1
fi
