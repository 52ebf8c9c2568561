#!/usr/bin/env bash
# Installs the Debian packages dcq needs, only those missing. Used by tools/demo.sh and
# tools/test.sh so that each is one command on a fresh Debian 12 machine.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libgtest-dev libzstd-dev liblz4-dev libcli11-dev
      libspdlog-dev nlohmann-json3-dev libxxhash-dev libhtscodecs-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
