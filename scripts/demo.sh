#!/usr/bin/env bash
# `make demo`: build the demo image, start `dockyard up` in the background, apply the
# 3-replica web Deployment, wait for it, and show the pods and how to reach one.
# `scripts/demo.sh down` stops the demo cluster and removes the demo deployment.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKYARD=${DOCKYARD:-dockyard}
STATE=${DOCKYARD_DEMO_DIR:-$PWD/.demo}
DATA=${DOCKYARD_DATA_DIR:-/var/lib/dockyard}
mkdir -p "$STATE"

if [ "${1:-}" = "down" ]; then
  "$DOCKYARD" delete deployment web --ignore-not-found >/dev/null 2>&1 || true
  if [ -f "$STATE/dockyard.pid" ] && kill -0 "$(cat "$STATE/dockyard.pid")" 2>/dev/null; then
    # let the agent stop the pods' containers before the cluster goes away
    for _ in $(seq 1 120); do
      [ -z "$("$DOCKYARD" get pods -l app=web -o name 2>/dev/null)" ] && break
      sleep 0.5
    done
    kill "$(cat "$STATE/dockyard.pid")"
    for _ in $(seq 1 40); do kill -0 "$(cat "$STATE/dockyard.pid")" 2>/dev/null || break; sleep 0.5; done
    echo "demo cluster stopped"
  fi
  # the agent's stop leaves the node's service rules and DNS server running (pods keep their
  # traffic while no agent runs); the demo is over, so remove them
  "$DOCKYARD" agent --cleanup --data-dir "$DATA/agent" >/dev/null 2>&1 || true
  rm -f "$STATE/dockyard.pid"
  exit 0
fi

echo "==> building the demo image dockyard/demo-web:1"
ctx=$(mktemp -d)
cp /bin/busybox deploy/demo/Dockerfile deploy/demo/index.sh "$ctx/"
docker build -q -t dockyard/demo-web:1 "$ctx" >/dev/null
rm -rf "$ctx"

if [ -f "$STATE/dockyard.pid" ] && kill -0 "$(cat "$STATE/dockyard.pid")" 2>/dev/null; then
  echo "==> dockyard up is already running (pid $(cat "$STATE/dockyard.pid"))"
else
  echo "==> starting dockyard up in the background (log: $STATE/dockyard.log, data: $DATA)"
  nohup "$DOCKYARD" up --data-dir "$DATA" >"$STATE/dockyard.log" 2>&1 </dev/null &
  echo $! >"$STATE/dockyard.pid"
fi

echo "==> waiting for the node to be Ready"
for i in $(seq 1 120); do
  if "$DOCKYARD" get nodes 2>/dev/null | grep -q ' Ready'; then break; fi
  if ! kill -0 "$(cat "$STATE/dockyard.pid")" 2>/dev/null; then
    echo "error: dockyard up exited; last log lines:" >&2; tail -n 20 "$STATE/dockyard.log" >&2; exit 1
  fi
  [ "$i" = 120 ] && { echo "error: no Ready node after 60s; see $STATE/dockyard.log" >&2; exit 1; }
  sleep 0.5
done
"$DOCKYARD" get nodes

echo "==> applying deploy/examples/web.yaml"
"$DOCKYARD" apply -f deploy/examples/web.yaml

echo "==> waiting for 3 Running pods"
for i in $(seq 1 120); do
  ready=$("$DOCKYARD" get deployment web -o json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",{}).get("readyReplicas",0))')
  [ "$ready" = 3 ] && break
  [ "$i" = 120 ] && { echo "error: the web deployment has $ready/3 ready pods after 60s" >&2; "$DOCKYARD" get pods -o wide >&2; exit 1; }
  sleep 0.5
done
"$DOCKYARD" get deployments
"$DOCKYARD" get pods -o wide

ip=$("$DOCKYARD" get pods -l app=web -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["status"]["podIP"])')
echo "==> one pod answers at http://$ip/ :"
python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://$ip/', timeout=5).read().decode().strip())"
cat <<TXT

The demo is running. Try:
  curl http://$ip/
  $DOCKYARD get pods -o wide
  $DOCKYARD scale deployment web --replicas 5
  $DOCKYARD describe deployment web
Stop it with: make demo-down
TXT
