#!/bin/sh
# install-deps.sh -- installs the Debian packages arrpc builds and tests with, only those missing.
# Runs `apt-get update` once, and only when something is missing. Needs root (or sudo).
set -eu

PACKAGES="gcc make cmake pkg-config libc6-dev
libmsgpack-dev libwolfssl-dev libmicrohttpd-dev libcmocka-dev libjansson-dev
python3 python3-msgpack python3-dev
clang libclang-rt-14-dev clang-format valgrind man-db
prometheus jq iproute2 python3-yaml haproxy
dpkg-dev debhelper lintian"

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) missing="$missing $pkg" ;;
    esac
done
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing$missing" >&2
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y $missing
