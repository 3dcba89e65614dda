#!/bin/sh
# Write a page naming this pod, then serve it; stop at once on SIGTERM (graceful stop).
mkdir -p /www
echo "<h1>Hello from Dockyard</h1><p>pod $(hostname) version ${VERSION:-1}</p>" > /www/index.html
echo "ok" > /www/healthz
httpd -f -p "${PORT:-80}" -h /www &
trap 'kill $!; exit 0' TERM INT
wait $!
