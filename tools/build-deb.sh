#!/bin/sh
# build-deb.sh -- builds arrpc's Debian packages out of tree, so the checkout is only read: copies
# the source (the files git tracks, plus new ones it does not ignore; without git, all but build*
# and .git) to OUTDIR/src and runs `dpkg-buildpackage -b -us -uc` there, which leaves the .deb
# files, the .changes and the .buildinfo in OUTDIR. The test suite is not run (nocheck).
# Usage: tools/build-deb.sh OUTDIR [JOBS]
set -eu

usage="usage: build-deb.sh OUTDIR [JOBS]"
src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?$usage}
jobs=${2:-$(nproc)}

for tool in dpkg-buildpackage dh; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-deb: $tool not found: apt-get install dpkg-dev debhelper" >&2
        exit 1
    fi
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
mkdir "$out/src"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # --ignore-failed-read: a tracked file deleted in the checkout is left out, not an error.
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
        tar --null --ignore-failed-read -T - -cf -) | tar -C "$out/src" -xf -
else
    tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$out/src" -xf -
fi

cd "$out/src"
DEB_BUILD_OPTIONS="nocheck parallel=$jobs ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -b -us -uc
