#!/usr/bin/env bash
# Debian packages Dockyard's demo, tests and benchmarks use, installed when missing (as root):
#   busybox-static   /bin/busybox (static): the demo and test images are built from it
#   iptables         Services, and the lab's bridge rules
#   python3-venv     the project's venv
#   openssh-server   sshd and its sftp-server for the lab's hosts (SSH bootstrap tests)
#   openssh-client   ssh-keygen: the lab's host and client keys
#   iproute2         ip: the lab's namespaces, veths and bridge
#   util-linux       nsenter, unshare: the lab's hosts
#   prometheus       /usr/bin/prometheus, run by the Prometheus integration tests
#   wrk              the HTTP load generator of bench/api.py (which falls back to its own without it)
# Each is detected by the command or file the tests use; apt runs only when something is
# missing, without recommends, and without starting the packages' services.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

need=()
what=()
want() {  # want PACKAGE WHAT: record PACKAGE (once) for the summary line
  case " ${need[*]-} " in *" $1 "*) ;; *) need+=("$1"); what+=("$1 ($2)") ;; esac
}

# a dynamically linked busybox (Debian's "busybox") cannot run in a FROM-scratch image
if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then want busybox-static "static /bin/busybox"; fi
have iptables || want iptables iptables
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || want python3-venv "python3 -m venv"
[ -x /usr/sbin/sshd ] || want openssh-server /usr/sbin/sshd
[ -x /usr/lib/openssh/sftp-server ] || want openssh-sftp-server /usr/lib/openssh/sftp-server
have ssh-keygen || want openssh-client ssh-keygen
have ip || want iproute2 ip
{ have nsenter && have unshare; } || want util-linux "nsenter, unshare"
[ -x /usr/bin/prometheus ] || want prometheus /usr/bin/prometheus
have wrk || want wrk wrk

[ ${#need[@]} -eq 0 ] && exit 0
list=$(printf '%s, ' "${what[@]}")
list=${list%, }

if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing Debian packages: $list; run this script as root, or:" >&2
  echo "  apt-get install ${need[*]}" >&2
  exit 1
fi
echo "installing Debian packages: $list..." >&2
export DEBIAN_FRONTEND=noninteractive
# the tests run these programs themselves: keep the packages' services from starting
# (sshd on port 22, prometheus on 9090) where nothing else already decides that
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
