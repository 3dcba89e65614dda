#!/usr/bin/env bash
# Debian packages Dockyard's demo and tests use: the static busybox that images are built
# from (no registry is needed), iptables, and the venv module.
set -euo pipefail
need=()
[ -x /bin/busybox ] || need+=(busybox-static)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
