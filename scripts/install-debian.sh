#!/usr/bin/env bash
# Installs Debian packages when the program they provide is missing; does
# nothing when it is already there. Only Debian's packages: never a program
# downloaded from anywhere else. Run as root (or with sudo available):
#   bash scripts/install-debian.sh chromium   # /usr/bin/chromium, for tests/browser
#   bash scripts/install-debian.sh nginx      # /usr/sbin/nginx, for tests/nginx.rs
set -euo pipefail

case "${1:-}" in
  chromium) PROGRAM=/usr/bin/chromium; PACKAGES=(chromium fonts-liberation) ;;
  nginx) PROGRAM=/usr/sbin/nginx; PACKAGES=(nginx) ;;
  *) echo "usage: bash scripts/install-debian.sh chromium|nginx" >&2; exit 2 ;;
esac
NAME=$1

if [ -x "$PROGRAM" ]; then
  echo "$NAME: already installed ($PROGRAM)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-debian: apt-get not found: install Debian's ${PACKAGES[*]} by hand" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-debian: run as root (or install sudo)" >&2
    exit 1
  fi
fi

echo "== apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
echo "== apt-get install ${PACKAGES[*]}"
# (The tests run nginx themselves, on ports of their own, never the
# package's service.)
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${PACKAGES[@]}"

if [ ! -x "$PROGRAM" ]; then
  echo "install-debian: ${PACKAGES[*]} did not provide $PROGRAM" >&2
  exit 1
fi
echo "$NAME: installed ($PROGRAM)"
