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
it thaws frozen hosts, kills the hosts' processes by PID (every PID in each netns, after
`docker rm -f` and a graceful dockerd stop), deletes namespaces, veths, the bridge and the
iptables rules.

`up` first checks that the programs it runs exist and names the Debian packages of the missing
ones. A host that does not come up fails at once when its init process or its dockerd exits,
with the end of init.log (and of dockerd.log when dockerd is the one that failed) in the error.

`freeze(h)` / `thaw(h)` stop and continue every process of a host (a hung machine whose network
still answers at the kernel level): the PIDs in its netns and all their descendants, which
include the containers' processes (they run in their own namespaces under containerd-shim).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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

# programs the lab runs: (name, where it must be, or "" to look it up in PATH, Debian package)
REQUIRED_PROGRAMS = (
    ("dockerd", "", "docker.io"),
    ("docker", "", "docker.io"),
    ("sshd", "/usr/sbin/sshd", "openssh-server"),
    ("sftp-server", "/usr/lib/openssh/sftp-server", "openssh-sftp-server"),
    ("ssh-keygen", "", "openssh-client"),
    ("ip", "", "iproute2"),
    ("nsenter", "", "util-linux"),
    ("unshare", "", "util-linux"),
    ("iptables", "", "iptables"),
)
LOG_TAIL_LINES = 25
# what `cut` drops on a host's eth0, inside its netns: the host's own traffic, and what it
# forwards to and from its pods (which passes neither INPUT nor OUTPUT)
CUT_RULES = (("INPUT", "-i"), ("OUTPUT", "-o"), ("FORWARD", "-i"), ("FORWARD", "-o"))

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
    frozen: bool = False
    # [pid, start time] of each process `freeze` stopped, so `thaw` also reaches the ones that
    # left the host's process tree meanwhile (and never a later process that reused a pid)
    stopped: list[list[int]] = field(default_factory=list)

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
        check_programs()
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
        with open(hd / "init.log", "wb") as log:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/var/run/netns/{h.name}", "unshare", "--mount", "--propagation", "private",
                 "sh", str(init)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        h.holder = proc.pid

    def wait_host(self, h: LabHost, timeout: float = 60.0) -> None:
        """Wait until the host's dockerd answers; fail as soon as its init process or its
        dockerd has exited, with the end of their logs in the error."""
        deadline = time.monotonic() + timeout
        dockerd_gone_since = 0.0
        while True:
            if _exited(h.holder):
                raise RuntimeError(self._start_failure(h, f"its init process (pid {h.holder}) exited"))
            if (Path(h.dir) / "ready").exists():
                try:
                    if self.exec_in(h, "docker", "info", check=False, timeout=10).returncode == 0:
                        return
                except subprocess.TimeoutExpired:
                    pass
                # dockerd was started before `ready` was written: if none runs now, it exited
                if any(_comm(p) == "dockerd" for p in self.netns_pids(h)):
                    dockerd_gone_since = 0.0
                elif not dockerd_gone_since:
                    dockerd_gone_since = time.monotonic()
                elif time.monotonic() - dockerd_gone_since > 2:
                    raise RuntimeError(self._start_failure(h, "its dockerd exited", dockerd=True))
            if time.monotonic() > deadline:
                raise RuntimeError(self._start_failure(h, f"dockerd did not answer within {timeout:.0f}s",
                                                       dockerd=True))
            time.sleep(0.3)

    def _start_failure(self, h: LabHost, what: str, dockerd: bool = False) -> str:
        msg = f"lab host {h.name} did not come up: {what}"
        for log in ("init.log", "dockerd.log") if dockerd else ("init.log",):
            path = Path(h.dir) / log
            msg += f"\n--- {path} (end) ---\n{_tail(path, LOG_TAIL_LINES) or '(empty)'}"
        return msg

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

    def host_pids(self, h: LabHost) -> list[int]:
        """Every process of a host: the PIDs in its netns and all their descendants (the
        containers' processes are in their own namespaces, children of containerd-shim)."""
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in _proc_table().items():
            children.setdefault(ppid, []).append(pid)
        found: set[int] = set()
        todo = self.netns_pids(h)
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(children.get(pid, ()))
        return sorted(found)

    def freeze(self, h: LabHost) -> None:
        """SIGSTOP every process of the host, as a machine that hangs: dockerd, containerd, the
        shims, the containers, sshd, the agent. The kernel still answers for the host (ARP,
        TCP handshakes into listen backlogs), nothing in it replies. Recorded in lab.json, so
        `down` thaws the host before it stops it.

        The holder process is left running; it is only a `sleep`, and `exec_in` needs nothing
        from it but its namespaces (nsenter enters those of a stopped process as well). Commands
        run with `exec_in` start and run normally; those that talk to the host's dockerd (`docker
        ...`) hang until `thaw`, so give them a timeout."""
        h.frozen = True
        self.save()  # first: a freeze interrupted half-way is still thawed by `down`
        stopped = {pid: start for pid, start in h.stopped}
        for _ in range(10):  # again until no new process appears (a fork that was under way)
            table = _proc_table()
            new = [p for p in self.host_pids(h) if p != h.holder and p not in stopped and p in table]
            if not new:
                break
            for pid in new:
                _kill(pid, signal.SIGSTOP)
                stopped[pid] = table[pid][1]
        h.stopped = [[pid, start] for pid, start in sorted(stopped.items())]
        self.save()
        deadline = time.monotonic() + 5  # SIGSTOP is asynchronous: wait until they have stopped
        while time.monotonic() < deadline and any(_state(p) not in ("T", "t", "Z", "X", "") for p in stopped):
            time.sleep(0.05)

    def thaw(self, h: LabHost) -> None:
        """SIGCONT what `freeze` stopped and every process the host has now (also those
        started while it was frozen)."""
        table = _proc_table()
        pids = {pid for pid, start in h.stopped if pid in table and table[pid][1] == start}
        pids.update(self.host_pids(h))
        for pid in pids:
            _kill(pid, signal.SIGCONT)
        h.frozen = False
        h.stopped = []
        self.save()

    def cut(self, h: LabHost) -> None:
        """Make the host unreachable (as a pulled cable): drop all traffic on its eth0 inside
        its netns, the host's own and its pods'."""
        for chain, direction in CUT_RULES:
            self.exec_in(h, "iptables", "-I", chain, direction, "eth0", "-j", "DROP")

    def heal(self, h: LabHost) -> None:
        for chain, direction in CUT_RULES:
            self.exec_in(h, "iptables", "-D", chain, direction, "eth0", "-j", "DROP", check=False)

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
        if h.frozen or h.stopped:
            self.thaw(h)  # a stopped dockerd cannot stop gracefully, nor remove containers
        if not _exited(h.holder):
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


def check_programs() -> None:
    """Fail with the missing programs and their Debian packages when the lab cannot run here."""
    missing = [(name, pkg) for name, path, pkg in REQUIRED_PROGRAMS
               if not (os.access(path, os.X_OK) if path else shutil.which(name))]
    if missing:
        pkgs = sorted({pkg for _, pkg in missing})
        raise RuntimeError("the lab needs programs that are missing here: "
                           + ", ".join(f"{name} (Debian package {pkg})" for name, pkg in missing)
                           + f"; install them with `apt-get install {' '.join(pkgs)}` (scripts/ensure-packages.sh and "
                           "scripts/ensure-docker.sh do)")


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks since boot) of every process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields:
                table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from the state on (field 3 of proc(5) is [0]); [] if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses


def _state(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[0] if fields else ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _exited(pid: int) -> bool:
    """Whether a process has ended (a zombie counts: it is reaped here if it is our child)."""
    if pid <= 0:
        return True
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return True
    except ChildProcessError:
        pass
    return _state(pid) in ("Z", "X", "")


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until the processes have ended. A zombie has: dockerd's parent is the holder, a
    `sleep` that never reaps it; `_exited` reaps the ones that are our children (the holders)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not all(_exited(p) for p in pids):
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
    for cmd, text in (("freeze", "SIGSTOP every process of a host"), ("thaw", "SIGCONT them again")):
        f = sub.add_parser(cmd, help=text)
        f.add_argument("host", help="host name or index")
        f.add_argument("--dir", required=True)
    args = p.parse_args(argv)
    directory = Path(args.dir).resolve()
    if args.cmd in ("freeze", "thaw"):
        lab = Lab.load(directory)
        h = lab.hosts[int(args.host)] if args.host.isdigit() else lab.host(args.host)
        if args.cmd == "freeze":
            lab.freeze(h)
        else:
            lab.thaw(h)
        return 0
    if args.cmd == "up":
        try:
            lab = Lab(directory, args.n, args.subnet, args.bridge, args.prefix).up()
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        for h in lab.hosts:
            print(f"{h.name} {h.address} ssh -i {lab.key_file} root@{h.address}")
        print(f"master address: {lab.gateway}")
        return 0
    if (directory / "lab.json").exists():
        Lab.load(directory).down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
