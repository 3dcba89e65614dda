#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io if the
# engine is absent, and start dockerd in the background when no daemon answers (machines
# without systemd as PID 1 do not start it from the package).
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing the Docker engine (docker.io)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && systemctl start docker 2>/dev/null; then
    :
  else
    echo "starting dockerd in the background (log: /var/log/dockerd.log)..." >&2
    # in its own session: the daemon outlives the shell (and process group) that started it
    setsid nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  fi
fi
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.5
done
echo "error: the Docker engine did not answer within 30s; see /var/log/dockerd.log" >&2
exit 1
