#!/usr/bin/env bash
# Make a container engine usable on this machine kind, idempotently: install podman + runc + debootstrap
# (Debian), configure /etc/containers/containers.conf for sandboxed hosts (no ulimits, cgroupfs, runc), and
# import a local base image localhost/debian:bookworm-slim made by debootstrap from the Debian mirror apt
# already uses (no image registry is reachable here). Each step is skipped when already done.
# Exit status 0: the engine runs; non-zero with one line on stderr saying why not.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm-slim}
CONF=/etc/containers/containers.conf

fail() { echo "podman-setup: $*" >&2; exit 1; }

install_packages() {
  command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null && return
  [ "$(id -u)" = 0 ] || fail "podman is not installed and installing it needs root"
  command -v apt-get >/dev/null || fail "podman is not installed and there is no apt-get to install it"
  local pkgs=(podman runc debootstrap) apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
  ("${apt[@]}" install "${pkgs[@]}" || ("${apt[@]}" update && "${apt[@]}" install "${pkgs[@]}")) \
    >/dev/null 2>&1 || fail "apt-get install ${pkgs[*]} failed"
}

# set KEY = VALUE under [SECTION] of $CONF, adding the section or replacing an existing key
set_conf() {
  local section=$1 key=$2 value=$3
  python3 - "$CONF" "$section" "$key" "$value" <<'PY'
import re, sys
from pathlib import Path

path, section, key, value = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
text = path.read_text() if path.exists() else ""
line = f"{key} = {value}"
head = re.search(rf"^\[{re.escape(section)}\][ \t]*$", text, re.M)
if not head:
    text = text.rstrip("\n") + ("\n\n" if text else "") + f"[{section}]\n{line}\n"
else:
    nxt = re.search(r"^\[", text[head.end():], re.M)
    end = head.end() + nxt.start() if nxt else len(text)
    body = text[head.end():end]
    key_re = re.compile(rf"^[ \t]*{re.escape(key)}[ \t]*=.*$", re.M)
    body = key_re.sub(line, body, count=1) if key_re.search(body) else "\n" + line + body
    text = text[: head.end()] + body + text[end:]
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(text)
PY
}

configure() {
  if [ "$(id -u)" != 0 ]; then
    grep -qs 'runtime = "runc"' "$CONF" && return
    fail "cannot configure $CONF (needs root)"
  fi
  set_conf containers default_ulimits '[]'
  set_conf engine cgroup_manager '"cgroupfs"'
  set_conf engine runtime '"runc"'
}

debian_mirror() {
  # the first deb URI apt uses (deb822 .sources or one-line .list)
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$uri" ] || uri=$(grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -v security | awk '{for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

import_base() {
  podman image exists "$BASE_IMAGE" && return
  local rootfs
  rootfs=$(mktemp -d /var/tmp/feedsvc-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >/dev/null 2>&1 \
    || fail "debootstrap of bookworm from $(debian_mirror) failed"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import -q - "$BASE_IMAGE" >/dev/null || fail "podman import of $BASE_IMAGE failed"
}

install_packages
configure
podman info >/dev/null 2>&1 || fail "podman is installed but does not run here ($(podman info 2>&1 | tail -n1))"
import_base
echo "podman-setup: podman $(podman version --format '{{.Client.Version}}') ready, base image $BASE_IMAGE"
