#!/bin/sh
# Write a page naming this pod, then serve it in the foreground.
mkdir -p /www
echo "<h1>Hello from Dockyard</h1><p>pod $(hostname) version ${VERSION:-1}</p>" > /www/index.html
echo "ok" > /www/healthz
exec httpd -f -p "${PORT:-80}" -h /www
