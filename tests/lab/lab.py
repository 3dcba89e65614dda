"""A multi-host lab on one machine: N "hosts", each with its own network, dockerd and sshd.

Usable as a script (`python -m tests.lab.lab up 3 --dir /tmp/lab`, `... down --dir /tmp/lab`)
and as a Python API (`Lab(dir, n).up()` / `.down()`) for the lab tests. Needs root.

Layout, per host i (0-based):

* a network namespace `<prefix>-h<i>` with a veth pair; the host end (eth0) has
  `<subnet>.<11+i>/24` and a default route via the bridge `<bridge>` (`<subnet>.1/24`) in the
  root namespace, where the master listens;
* a mount namespace made by `nsenter --net=… unshare --mount --propagation private`, whose
  init script bind-mounts per-host directories (under `<dir>/hosts/h<i>/`) over /run,
  /var/lib/docker, /opt, /etc/dockyard and /var/lib/dockyard-agent, then starts dockerd
  (own `--bip`) and sshd (own host key, the lab key in an AuthorizedKeysFile under the lab
  dir), and then stays as a `sleep` holder process whose namespaces `exec_in` enters;
* no systemd: the installer must use its supervised fallback.

The root namespace gets `iptables -I FORWARD -i <bridge> -o <bridge> -j ACCEPT` (Docker makes
the FORWARD policy DROP and bridged frames go through iptables) and a nat POSTROUTING ACCEPT for
the bridge (so the root's own masquerade rules never rewrite traffic between lab hosts). Everything created is
recorded in `<dir>/lab.json` so `down` works from another process, and `down` is idempotent:
it kills the hosts' processes by PID (every PID in each netns, after `docker rm -f` and a
graceful dockerd stop), deletes namespaces, veths, the bridge and the iptables rules.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_SUBNET = "10.99.0"
DEFAULT_BRIDGE = "dylab0"
DEFAULT_PREFIX = "dylab"
LAB_IMAGES = ("dockyard/demo-web:1", "dockyard/busybox:1", "dockyard/pause:1")
BIND_DIRS = {
    "run": "/run",
    "docker": "/var/lib/docker",
    "opt": "/opt",
    "etc-dockyard": "/etc/dockyard",
    "agent": "/var/lib/dockyard-agent",
}

INIT_SCRIPT = """#!/bin/sh
# init of lab host {name}: runs in its own network and mount namespaces
set -e
H={hostdir}
for d in run docker opt etc-dockyard agent; do mkdir -p "$H/$d"; done
mount --bind "$H/run" /run
mount --bind "$H/docker" /var/lib/docker
mount --bind "$H/opt" /opt
mount --bind "$H/etc-dockyard" /etc/dockyard
mount --bind "$H/agent" /var/lib/dockyard-agent
mkdir -p /run/sshd /run/lock
ip link set lo up
dockerd --bip {bip} --pidfile /run/docker.pid --host unix:///var/run/docker.sock \\
  > "$H/dockerd.log" 2>&1 &
/usr/sbin/sshd -f "$H/sshd_config" -E "$H/sshd.log"
touch "$H/ready"
exec sleep infinity
"""

SSHD_CONFIG = """Port 22
ListenAddress {address}
HostKey {hostdir}/ssh_host_ed25519_key
AuthorizedKeysFile {labdir}/authorized_keys
PidFile /run/sshd.pid
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def sh(*cmd: str, check: bool = True, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(cmd), capture_output=True, text=True, input=input, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    return r


@dataclass
class LabHost:
    index: int
    name: str  # netns name, also the node name
    address: str
    veth: str
    bip: str
    dir: str
    holder: int = 0

    @property
    def host_key_pub(self) -> Path:
        return Path(self.dir) / "ssh_host_ed25519_key.pub"


@dataclass
class Lab:
    dir: Path
    n: int = 3
    subnet: str = DEFAULT_SUBNET
    bridge: str = DEFAULT_BRIDGE
    prefix: str = DEFAULT_PREFIX
    hosts: list[LabHost] = field(default_factory=list)
    rules: list[list[str]] = field(default_factory=list)

    # -- state -----------------------------------------------------------------------------

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    @property
    def key_file(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def state_file(self) -> Path:
        return self.dir / "lab.json"

    def save(self) -> None:
        data = {"n": self.n, "subnet": self.subnet, "bridge": self.bridge, "prefix": self.prefix,
                "hosts": [asdict(h) for h in self.hosts], "rules": self.rules}
        self.state_file.write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, directory: Path) -> Lab:
        data = json.loads((directory / "lab.json").read_text())
        lab = cls(directory, data["n"], data["subnet"], data["bridge"], data["prefix"])
        lab.hosts = [LabHost(**h) for h in data["hosts"]]
        lab.rules = data["rules"]
        return lab

    # -- up ----------------------------------------------------------------------------------

    def up(self, images: tuple[str, ...] = LAB_IMAGES) -> Lab:
        if os.geteuid() != 0:
            raise RuntimeError("the lab needs root")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hosts = [
            LabHost(i, f"{self.prefix}-h{i}", f"{self.subnet}.{11 + i}", f"{self.prefix}v{i}",
                    f"172.30.{10 + i}.1/24", str(self.dir / "hosts" / f"h{i}"))
            for i in range(self.n)
        ]
        self.save()
        try:
            self._network()
            self._keys()
            for h in self.hosts:
                self._start_host(h)
            self.save()
            for h in self.hosts:
                self.wait_host(h)
            self._load_images(images)
        except BaseException:
            self.down()
            raise
        return self

    def _rule(self, *spec: str) -> None:
        sh("iptables", "-I", *spec)
        self.rules.append(list(spec))
        self.save()

    def _network(self) -> None:
        if sh("ip", "link", "show", self.bridge, check=False).returncode == 0:
            raise RuntimeError(f"bridge {self.bridge} already exists: is another lab up? (down --dir it first)")
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        self._rule("FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT")
        self._rule("INPUT", "-i", self.bridge, "-j", "ACCEPT")
        # bridged lab traffic also passes the root namespace's nat table: keep the root's own
        # MASQUERADE rules (Docker's) away from packets that only cross between lab hosts
        self._rule("POSTROUTING", "-t", "nat", "-o", self.bridge, "-j", "ACCEPT")
        for h in self.hosts:
            sh("ip", "netns", "add", h.name)
            sh("ip", "link", "add", h.veth, "type", "veth", "peer", "name", f"{h.veth}p")
            sh("ip", "link", "set", f"{h.veth}p", "netns", h.name)
            sh("ip", "link", "set", h.veth, "master", self.bridge, "up")
            ns = ("ip", "netns", "exec", h.name)
            sh(*ns, "ip", "link", "set", f"{h.veth}p", "name", "eth0")
            sh(*ns, "ip", "addr", "add", f"{h.address}/24", "dev", "eth0")
            sh(*ns, "ip", "link", "set", "eth0", "up")
            sh(*ns, "ip", "link", "set", "lo", "up")
            sh(*ns, "ip", "route", "add", "default", "via", self.gateway)

    def _keys(self) -> None:
        if not self.key_file.exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dockyard-lab", "-f", str(self.key_file))
        (self.dir / "authorized_keys").write_text(Path(f"{self.key_file}.pub").read_text())

    def _start_host(self, h: LabHost) -> None:
        hd = Path(h.dir)
        hd.mkdir(parents=True, exist_ok=True)
        key = hd / "ssh_host_ed25519_key"
        if not key.exists():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (hd / "sshd_config").write_text(SSHD_CONFIG.format(address=h.address, hostdir=hd, labdir=self.dir))
        for mountpoint in ("/etc/dockyard", "/var/lib/dockyard-agent"):
            os.makedirs(mountpoint, exist_ok=True)
        init = hd / "init.sh"
        init.write_text(INIT_SCRIPT.format(name=h.name, hostdir=hd, bip=h.bip))
        (hd / "ready").unlink(missing_ok=True)
        with open(hd / "init.log", "ab") as log:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/var/run/netns/{h.name}", "unshare", "--mount", "--propagation", "private",
                 "sh", str(init)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        h.holder = proc.pid

    def wait_host(self, h: LabHost, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (Path(h.dir) / "ready").exists() and self.exec_in(h, "docker", "info", check=False,
                                                                 timeout=10).returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"lab host {h.name} did not come up; see {h.dir}/dockerd.log and init.log")

    def _load_images(self, images: tuple[str, ...]) -> None:
        present = [i for i in images if sh("docker", "image", "inspect", i, check=False).returncode == 0]
        if not present:
            return
        tar = self.dir / "images.tar"
        sh("docker", "save", "-o", str(tar), *present)
        for h in self.hosts:
            self.exec_in(h, "docker", "load", "-q", "-i", str(tar))

    # -- using -------------------------------------------------------------------------------

    def exec_in(self, h: LabHost, *cmd: str, check: bool = True, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside a host's network and mount namespaces."""
        return sh("nsenter", "-t", str(h.holder), "-n", "-m", *cmd, check=check, timeout=timeout, input=input)

    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    def host_key_line(self, h: LabHost) -> str:
        parts = h.host_key_pub.read_text().split()
        return f"{h.address} {parts[0]} {parts[1]}\n"

    def netns_pids(self, h: LabHost) -> list[int]:
        r = sh("ip", "netns", "pids", h.name, check=False)
        return [int(x) for x in r.stdout.split() if x.isdigit()]

    def cut(self, h: LabHost) -> None:
        """Make the host unreachable (as a pulled cable): drop its traffic inside its netns."""
        for chain in ("INPUT", "OUTPUT"):
            self.exec_in(h, "iptables", "-I", chain, "-i" if chain == "INPUT" else "-o", "eth0", "-j", "DROP")

    def heal(self, h: LabHost) -> None:
        for chain in ("INPUT", "OUTPUT"):
            self.exec_in(h, "iptables", "-D", chain, "-i" if chain == "INPUT" else "-o", "eth0", "-j", "DROP",
                         check=False)

    # -- down --------------------------------------------------------------------------------

    def down(self) -> None:
        for h in self.hosts:
            self._stop_host(h)
        for h in self.hosts:
            sh("ip", "link", "del", h.veth, check=False)
            sh("ip", "netns", "del", h.name, check=False)
        for spec in reversed(self.rules):
            while sh("iptables", "-C", *spec, check=False).returncode == 0:
                sh("iptables", "-D", *spec, check=False)
        self.rules = []
        sh("ip", "link", "del", self.bridge, check=False)
        if self.dir.exists():
            self.save()

    def _stop_host(self, h: LabHost) -> None:
        if not Path(f"/var/run/netns/{h.name}").exists():
            return
        alive = h.holder and _alive(h.holder)
        if alive:
            self.exec_in(h, "sh", "-c", "ids=$(docker ps -aq 2>/dev/null); [ -n \"$ids\" ] && docker rm -f $ids",
                         check=False, timeout=60)
        pids = self.netns_pids(h)
        # agents and supervisors first, then dockerd gracefully, then whatever is left
        dockerd = _pidfile(Path(h.dir) / "run" / "docker.pid")
        for pid in pids:
            if pid not in (dockerd, h.holder):
                _kill(pid, signal.SIGKILL)
        if dockerd:
            _kill(dockerd, signal.SIGTERM)
            _wait_gone([dockerd], 15)
        for _ in range(3):
            left = self.netns_pids(h)
            if not left:
                break
            for pid in left:
                _kill(pid, signal.SIGKILL)
            _wait_gone(left, 5)
        if h.holder:
            _kill(h.holder, signal.SIGKILL)
            _wait_gone([h.holder], 5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        for p in pids:  # reap the ones that are our children (the holders)
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        time.sleep(0.1)


def _pidfile(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.lab.lab", description="a multi-host lab on this machine")
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="create N hosts")
    u.add_argument("n", type=int)
    u.add_argument("--dir", required=True)
    u.add_argument("--subnet", default=DEFAULT_SUBNET, help="first three octets of the lab /24 (default 10.99.0)")
    u.add_argument("--bridge", default=DEFAULT_BRIDGE)
    u.add_argument("--prefix", default=DEFAULT_PREFIX)
    d = sub.add_parser("down", help="tear a lab down (idempotent)")
    d.add_argument("--dir", required=True)
    args = p.parse_args(argv)
    directory = Path(args.dir).resolve()
    if args.cmd == "up":
        lab = Lab(directory, args.n, args.subnet, args.bridge, args.prefix).up()
        for h in lab.hosts:
            print(f"{h.name} {h.address} ssh -i {lab.key_file} root@{h.address}")
        print(f"master address: {lab.gateway}")
        return 0
    if (directory / "lab.json").exists():
        Lab.load(directory).down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
