"""Installing, checking and removing the agent on nodes over SSH.

The flow of `dockyard cluster up` (`ClusterInstaller.up`):

1. **Master**: make sure the master of the inventory answers; when it does not and its data
   directory is local, start `dockyard master` detached (pid in `<dataDir>/master.pid`).
   The join token and the admin kubeconfig come from that data directory.
2. **Prerequisites**, on every node before anything is changed: Linux, a Docker engine
   answering `docker info`, python ≥ 3.11 with venv/ensurepip, free disk under /opt, clock
   skew < 30 s against this machine. All problems of all nodes are reported at once.
3. **Wheelhouse**, built once per run with this interpreter's pip (`pip wheel` of the
   source tree and its dependencies) and cached under `<dataDir>/wheelhouse/<version>-<digest>`
   (the digest covers the sources), so later runs reuse it. Nodes have no internet: the
   wheelhouse is uploaded (only files the node lacks) and installed with
   `pip install --no-index --find-links` into `/opt/dockyard/venv`.
4. **Config**: `/etc/dockyard/agent.env` (server, join token, node name and IP; mode 0600).
5. **Service**: a systemd unit where systemd is PID 1, else a small supervisor script started
   with `setsid nohup` that restarts the agent when it dies (pids under /run/dockyard).
6. **Ready**: wait until the Node reports Ready through the API, then apply the inventory's
   labels and taints.

Idempotence: `/opt/dockyard/installed.json` records the installed version, wheel digest and
config hash; a node whose record matches and whose agent runs is reported "unchanged" and
nothing on it is touched.

Restarting an agent waits for the *new* agent: the Node must be Ready under another
agent instance id (`orchestrator.objects.nodeinfo`) than before the restart.

`remove_node` undoes all of it: cordon, drain, stop, remove the data plane the agent leaves
running on purpose (`dockyard agent --cleanup`: service rules, pod routes, the DNS server),
uninstall (unit or supervisor, venv, /etc/dockyard, the agent data directory), remove the
node's managed containers, delete the Node object.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..client import Client
from ..errors import ApiError
from ..objects.kinds import by_kind
from ..objects.nodeinfo import agent_instance
from . import BootstrapError
from .inventory import Inventory, NodeSpec
from .ssh import SSHConnection, SSHTarget

NODE = by_kind("v1", "Node")

OPT = "/opt/dockyard"
VENV = f"{OPT}/venv"
REMOTE_WHEELHOUSE = f"{OPT}/wheelhouse"
INSTALLED = f"{OPT}/installed.json"
SUPERVISOR = f"{OPT}/supervise.sh"
AGENT_LOG = f"{OPT}/agent.log"
ENV_FILE = "/etc/dockyard/agent.env"
UNIT_PATH = "/etc/systemd/system/dockyard-agent.service"
RUN_DIR = "/run/dockyard"
AGENT_DATA = "/var/lib/dockyard-agent"
MIN_PYTHON = (3, 11)
MAX_SKEW = 30.0
MANAGED_LABEL = "dockyard.io/managed=true"

Progress = Callable[[str], None]

SYSTEMD_UNIT = """\
[Unit]
Description=Dockyard node agent
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
Type=simple
EnvironmentFile=/etc/dockyard/agent.env
# the join token reaches the agent as $DOCKYARD_TOKEN from the 0600 env file, never in argv
ExecStart=/opt/dockyard/venv/bin/dockyard agent --server ${DOCKYARD_SERVER} \\
  --name ${DOCKYARD_NODE_NAME} --node-ip ${DOCKYARD_NODE_IP} --data-dir /var/lib/dockyard-agent
Restart=always
RestartSec=2
KillMode=process
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
"""

SUPERVISOR_SCRIPT = """\
#!/bin/sh
# Keeps the Dockyard agent running on hosts without systemd: restarts it when it exits.
# Started detached (setsid nohup); stop it with SIGTERM to the pid in /run/dockyard/supervisor.pid.
mkdir -p /run/dockyard
echo $$ > /run/dockyard/supervisor.pid
stop=0
child=
trap 'stop=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
while [ "$stop" = 0 ]; do
  set -a; . /etc/dockyard/agent.env; set +a   # exported: the token goes by environment, not argv
  /opt/dockyard/venv/bin/dockyard agent --server "$DOCKYARD_SERVER" \\
    --name "$DOCKYARD_NODE_NAME" --node-ip "$DOCKYARD_NODE_IP" --data-dir /var/lib/dockyard-agent \\
    >> /opt/dockyard/agent.log 2>&1 &
  child=$!
  echo "$child" > /run/dockyard/agent.pid
  wait "$child"
  if [ "$stop" = 1 ]; then wait "$child" 2>/dev/null; break; fi
  echo "$(date -u +%FT%TZ) agent exited; restarting in 2s" >> /opt/dockyard/agent.log
  sleep 2
done
rm -f /run/dockyard/agent.pid /run/dockyard/supervisor.pid
"""


# -- wheelhouse -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    version: str
    digest: str

    @property
    def files(self) -> list[Path]:
        return sorted(self.path.glob("*.whl"))

    @property
    def dockyard_wheel(self) -> Path:
        for f in self.files:
            if f.name.startswith("dockyard-"):
                return f
        raise BootstrapError(f"{self.path}: the wheelhouse has no dockyard wheel")


def source_root() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise BootstrapError(
            "this installation has no source tree to build the node wheelhouse from; "
            "pass --wheelhouse DIR (built with `pip wheel <dockyard source> -w DIR`)"
        )
    return root


def _source_files(root: Path) -> list[Path]:
    files = [root / "pyproject.toml"]
    if (root / "README.md").is_file():
        files.append(root / "README.md")
    for pkg in ("orchestrator", "agent"):
        files += sorted(p for p in (root / pkg).rglob("*") if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix != ".pyc")
    return files


def source_digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in _source_files(root):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def project_version(root: Path) -> str:
    import tomllib

    return str(tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"])


def build_wheelhouse(cache_dir: Path, root: Path | None = None, progress: Progress | None = None) -> Wheelhouse:
    """`pip wheel` of the sources and their dependencies, cached by version and digest."""
    root = root or source_root()
    version, digest = project_version(root), source_digest(root)
    target = cache_dir / f"{version}-{digest}"
    if (target / "manifest.json").is_file():
        return Wheelhouse(target, version, digest)
    if progress:
        progress(f"building the wheelhouse for dockyard {version} ({digest})")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dockyard-src-", dir=cache_dir) as tmp:
        src = Path(tmp) / "src"
        for f in _source_files(root):
            dest = src / f.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
        out = Path(tmp) / "wheels"
        r = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", str(src), "-w", str(out)],
            capture_output=True, text=True, timeout=900,
        )
        if r.returncode != 0:
            raise BootstrapError(f"building the wheelhouse failed: {(r.stderr or r.stdout).strip()[-800:]}")
        (out / "manifest.json").write_text(json.dumps({"version": version, "digest": digest}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
    return Wheelhouse(target, version, digest)


def wheelhouse_from_dir(path: Path) -> Wheelhouse:
    """A prebuilt wheelhouse (`--wheelhouse DIR`); its digest covers the wheel files."""
    h = hashlib.sha256()
    version = ""
    for f in sorted(path.glob("*.whl")):
        h.update(f.name.encode() + f.read_bytes())
        if f.name.startswith("dockyard-"):
            version = f.name.split("-")[1]
    if not version:
        raise BootstrapError(f"{path}: no dockyard-*.whl in the wheelhouse")
    return Wheelhouse(path, version, h.hexdigest()[:16])


# -- prerequisites ----------------------------------------------------------------------------


# commands the agent runs: pod network attachment (agent.podnet), routes, service rules
AGENT_TOOLS = {"ip": "iproute2", "nsenter": "util-linux", "iptables": "iptables",
               "iptables-save": "iptables", "iptables-restore": "iptables"}


def prereq_script(python: str) -> str:
    py = shlex.quote(python)
    return "\n".join([
        "echo os=$(uname -s)",
        "if out=$(docker info --format '{{.ServerVersion}}' 2>&1); then echo docker=ok:$out; "
        "else echo docker=fail:$(echo \"$out\" | tail -n 1); fi",
        f"if out=$({py} -c 'import sys, venv, ensurepip; print(\"%d.%d.%d\" % sys.version_info[:3])' 2>&1); "
        "then echo python=ok:$out; "
        f"else echo python=fail:$({py} -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' 2>/dev/null "
        "|| echo missing):$(echo \"$out\" | tail -n 1); fi",
        "mkdir -p /opt 2>/dev/null; echo disk_kb=$(df -Pk /opt | awk 'NR==2 {print $4}')",
        "echo clock=$(date +%s)",
        "echo init=$(cat /proc/1/comm 2>/dev/null)",
        "echo tools_missing=$(for t in " + " ".join(AGENT_TOOLS) + "; do "
        "command -v $t >/dev/null 2>&1 || printf '%s ' $t; done)",
    ])


def parse_facts(text: str) -> dict[str, str]:
    facts: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts[key.strip()] = value.strip()
    return facts


def _version_tuple(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(".")[:3])
    except ValueError:
        return ()


def compute_prereq_problems(facts: dict[str, str], node: NodeSpec, local_clock: float) -> list[str]:
    """Every unmet prerequisite of one node, each named (`docker: …`, `python3: …`)."""
    problems: list[str] = []
    osname = facts.get("os", "")
    if osname != "Linux":
        problems.append(f"os: Linux required, found {osname or 'nothing'}")
    docker = facts.get("docker", "")
    if not docker.startswith("ok:"):
        problems.append(f"docker: the Docker engine does not answer `docker info` ({docker[5:] or 'no output'})")
    py = facts.get("python", "")
    if py.startswith("ok:"):
        have = _version_tuple(py[3:])
        if have < MIN_PYTHON:
            problems.append(f"{node.python}: version {py[3:]} found, {'.'.join(map(str, MIN_PYTHON))} or newer "
                            "required")
    else:
        version, _, why = py[5:].partition(":")
        if version == "missing" or not version:
            problems.append(f"{node.python}: not found ({why or 'no output'})")
        elif _version_tuple(version) < MIN_PYTHON:
            problems.append(f"{node.python}: version {version} found, {'.'.join(map(str, MIN_PYTHON))} or newer "
                            "required")
        else:
            problems.append(f"{node.python}: the venv/ensurepip modules are missing (install python3-venv): {why}")
    try:
        free_mb = int(facts.get("disk_kb", "")) // 1024
        if free_mb < node.min_disk_mb:
            problems.append(f"disk: {free_mb} MB free under /opt, {node.min_disk_mb} MB required")
    except ValueError:
        problems.append("disk: cannot read the free space under /opt")
    missing = facts.get("tools_missing", "").split()
    if missing:
        packages = sorted({AGENT_TOOLS.get(t, t) for t in missing})
        problems.append(f"tools: {', '.join(missing)} not found (install {', '.join(packages)})")
    try:
        skew = abs(float(facts.get("clock", "")) - local_clock)
        if skew >= MAX_SKEW:
            problems.append(f"clock: {skew:.0f} s apart from this machine (must be < {MAX_SKEW:.0f} s; use NTP)")
    except ValueError:
        problems.append("clock: cannot read the node's time")
    return problems


# -- per-node state ---------------------------------------------------------------------------


def agent_env(server: str, token: str, node: NodeSpec) -> str:
    return (
        f"DOCKYARD_SERVER={server}\n"
        f"DOCKYARD_TOKEN={token}\n"
        f"DOCKYARD_NODE_NAME={node.name}\n"
        f"DOCKYARD_NODE_IP={node.node_ip}\n"
    )


def config_hash(env: str, use_systemd: bool) -> str:
    unit = SYSTEMD_UNIT if use_systemd else SUPERVISOR_SCRIPT
    return hashlib.sha256((env + "\0" + unit).encode()).hexdigest()[:16]


@dataclass
class NodeResult:
    name: str
    address: str
    action: str = ""  # installed | updated | unchanged | removed | upgraded | failed
    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    service: str = ""  # systemd | supervisor
    version: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def target_for(node: NodeSpec, known_hosts: tuple[str, ...], accept_new: bool,
               sudo_password: str | None = None) -> SSHTarget:
    return SSHTarget(
        host=node.address,
        port=node.port,
        user=node.user,
        key_file=node.key_file,
        use_agent=node.use_agent,
        sudo=bool(node.sudo),
        sudo_password=sudo_password if node.sudo == "password" else None,
        host_key_fingerprint=node.host_key_fingerprint,
        known_hosts=known_hosts,
        accept_new=accept_new,
        label=f"{node.name} ({node.address})",
    )


class NodeHost:
    """Operations on one node over an open SSH connection."""

    def __init__(self, conn: SSHConnection, node: NodeSpec) -> None:
        self.conn = conn
        self.node = node

    def facts(self) -> dict[str, str]:
        _, out, _ = self.conn.run(prereq_script(self.node.python), timeout=60)
        return parse_facts(out)

    def uses_systemd(self, facts: dict[str, str]) -> bool:
        return facts.get("init") == "systemd"

    def installed(self) -> dict[str, Any]:
        code, out, _ = self.conn.run(f"cat {INSTALLED} 2>/dev/null", timeout=30)
        try:
            return json.loads(out) if code == 0 and out.strip() else {}
        except ValueError:
            return {}

    def running(self, systemd: bool) -> bool:
        if systemd:
            code, _, _ = self.conn.run("systemctl is-active --quiet dockyard-agent", timeout=30)
            return code == 0
        code, _, _ = self.conn.run(
            f"test -f {RUN_DIR}/supervisor.pid && kill -0 $(cat {RUN_DIR}/supervisor.pid) 2>/dev/null", timeout=30
        )
        return code == 0

    def write_file(self, path: str, content: str, mode: str = "0644") -> None:
        d = os.path.dirname(path)
        self.conn.check(
            f"mkdir -p {shlex.quote(d)} && umask 077 && cat > {shlex.quote(path)}.tmp && "
            f"chmod {mode} {shlex.quote(path)}.tmp && mv {shlex.quote(path)}.tmp {shlex.quote(path)}",
            input=content, timeout=60,
        )

    def upload_wheelhouse(self, wh: Wheelhouse, progress: Progress | None = None) -> int:
        """Upload the wheels the node does not have yet; returns how many were sent."""
        staging = REMOTE_WHEELHOUSE if self.node.user == "root" else f"/tmp/dockyard-wheelhouse-{self.node.user}"
        self.conn.run(f"mkdir -p {staging}", sudo=False, timeout=30)
        if staging != REMOTE_WHEELHOUSE:
            self.conn.check(f"mkdir -p {REMOTE_WHEELHOUSE}")
        _, out, _ = self.conn.run(f"ls {REMOTE_WHEELHOUSE} 2>/dev/null", timeout=30)
        have = set(out.split())
        # the dockyard wheel keeps its name across source changes: always send it
        todo = [f for f in wh.files if f.name not in have or f.name.startswith("dockyard-")]
        if progress:
            size = sum(f.stat().st_size for f in todo) / 1e6
            progress(f"{self.node.name}: uploading {len(todo)} wheel(s), {size:.1f} MB")
        sent = 0
        for f in todo:
            self.conn.put(f, f"{staging}/{f.name}")
            sent += 1
        if staging != REMOTE_WHEELHOUSE:
            self.conn.check(f"cp {staging}/*.whl {REMOTE_WHEELHOUSE}/ && rm -rf {staging}")
        return sent

    def install_venv(self, wh: Wheelhouse, force: bool) -> None:
        py = shlex.quote(self.node.python)
        wheel = f"{REMOTE_WHEELHOUSE}/{wh.dockyard_wheel.name}"
        pip = f"{VENV}/bin/pip install --quiet --disable-pip-version-check --no-index --find-links {REMOTE_WHEELHOUSE}"
        cmd = f"test -x {VENV}/bin/python || {py} -m venv {VENV}; {pip} {wheel}"
        if force:
            cmd += f" && {pip} --no-deps --force-reinstall {wheel}"
        self.conn.check(cmd, timeout=900)

    def install_service(self, systemd: bool) -> None:
        if systemd:
            self.write_file(UNIT_PATH, SYSTEMD_UNIT)
            self.conn.check("systemctl daemon-reload && systemctl enable dockyard-agent >/dev/null 2>&1 || "
                            "systemctl enable dockyard-agent", timeout=60)
        else:
            self.write_file(SUPERVISOR, SUPERVISOR_SCRIPT, "0755")

    def start(self, systemd: bool) -> None:
        if systemd:
            self.conn.check("systemctl restart dockyard-agent", timeout=60)
            return
        self.stop(systemd)
        self.conn.check(
            f"mkdir -p {RUN_DIR}; setsid nohup {SUPERVISOR} > /dev/null 2>&1 < /dev/null & "
            f"for i in $(seq 1 50); do test -f {RUN_DIR}/agent.pid && exit 0; sleep 0.1; done; "
            "echo 'the supervisor did not start' >&2; exit 1",
            timeout=60,
        )

    def stop(self, systemd: bool | None = None) -> None:
        """Stop the agent (either service kind) and wait until its processes are gone."""
        script = (
            "if [ -d /run/systemd/system ] && systemctl cat dockyard-agent >/dev/null 2>&1; then "
            "systemctl stop dockyard-agent; fi; "
            f"for f in supervisor agent; do p=$(cat {RUN_DIR}/$f.pid 2>/dev/null) && kill -TERM $p 2>/dev/null; done; "
            f"for i in $(seq 1 100); do alive=0; for f in supervisor agent; do "
            f"p=$(cat {RUN_DIR}/$f.pid 2>/dev/null) && kill -0 $p 2>/dev/null && alive=1; done; "
            "[ $alive = 0 ] && break; sleep 0.2; done; "
            f"for f in supervisor agent; do p=$(cat {RUN_DIR}/$f.pid 2>/dev/null) && kill -KILL $p 2>/dev/null; done; "
            f"rm -f {RUN_DIR}/supervisor.pid {RUN_DIR}/agent.pid; true"
        )
        self.conn.check(script, timeout=60)

    def remove_data_plane(self) -> None:
        """Remove the node's service rules, pod routes and DNS server (`dockyard agent
        --cleanup`); an agent's own stop leaves them in place on purpose."""
        self.conn.run(f"test -x {VENV}/bin/dockyard && {VENV}/bin/dockyard agent --cleanup --data-dir {AGENT_DATA}",
                      timeout=120)

    def uninstall(self) -> list[str]:
        self.stop()
        self.remove_data_plane()
        script = (
            "if [ -d /run/systemd/system ] && [ -f " + UNIT_PATH + " ]; then "
            "systemctl disable dockyard-agent >/dev/null 2>&1; rm -f " + UNIT_PATH + "; systemctl daemon-reload; fi; "
            f"rm -f {UNIT_PATH}; "
            f"ids=$(docker ps -aq --filter label={MANAGED_LABEL} 2>/dev/null); "
            "[ -n \"$ids\" ] && docker rm -f $ids >/dev/null; "
            f"nets=$(docker network ls -q --filter label={MANAGED_LABEL} 2>/dev/null); "
            "[ -n \"$nets\" ] && docker network rm $nets >/dev/null 2>&1; "
            f"rm -rf {OPT} /etc/dockyard {AGENT_DATA}/* {RUN_DIR}; "
            f"[ -d {AGENT_DATA} ] && ! mountpoint -q {AGENT_DATA} && rmdir {AGENT_DATA} 2>/dev/null; true"
        )
        self.conn.check(script, timeout=120)
        return ["service", "data plane", "venv", "/etc/dockyard", AGENT_DATA, "containers"]

    def leftovers(self) -> list[str]:
        """What of an installation is still on the node (empty after a clean removal)."""
        script = (
            f"test -e {VENV} && echo venv; test -e {UNIT_PATH} && echo unit; test -e {SUPERVISOR} && echo supervisor; "
            "test -e /etc/dockyard/agent.env && echo config; "
            "for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); "
            "case \"$c\" in *'dockyard agent'*|*supervise.sh*|*agent.dnsserver*) echo process:${p#/proc/};; esac; done; "
            f"n=$(docker ps -aq --filter label={MANAGED_LABEL} 2>/dev/null | wc -l); [ \"$n\" != 0 ] && echo containers:$n; true"
        )
        _, out, _ = self.conn.run(script, timeout=60)
        return [line for line in out.split() if line]


# -- master -------------------------------------------------------------------------------------


def _api_answers(kubeconfig: Path) -> bool:
    try:
        with Client.from_kubeconfig(str(kubeconfig)) as c:
            c.request("GET", "/readyz")
        return True
    except Exception:
        return False


def ensure_master(inv: Inventory, kubeconfig: Path, progress: Progress | None = None,
                  timeout: float = 60.0) -> tuple[str, str]:
    """Start the inventory's master if it is not answering; returns (server URL, join token)."""
    m = inv.master
    data = Path(os.path.expanduser(m.data_dir))
    admin = data / "admin.kubeconfig"
    if not (admin.is_file() and _api_answers(admin)):
        if progress:
            progress(f"starting the master on {m.address}:{m.port} (data {data})")
        data.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "orchestrator", "master", "--data-dir", str(data),
               "--listen", f"{m.address}:{m.port}", "--advertise-address", m.address,
               "--write-kubeconfig", str(kubeconfig)]
        if m.node_grace is not None:
            cmd += ["--node-grace", str(m.node_grace)]
        if m.eviction_timeout is not None:
            cmd += ["--eviction-timeout", str(m.eviction_timeout)]
        env = dict(os.environ)
        root = Path(__file__).resolve().parents[2]
        if (root / "pyproject.toml").is_file():
            env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(data / "master.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        (data / "master.pid").write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while not (admin.is_file() and _api_answers(admin)):
            if proc.poll() is not None:
                tail = (data / "master.log").read_text(errors="replace").splitlines()[-5:]
                raise BootstrapError(f"the master exited with {proc.returncode}: " + " | ".join(tail))
            if time.monotonic() > deadline:
                raise BootstrapError(f"the master at {m.server} did not answer within {timeout:g}s")
            time.sleep(0.3)
    elif not kubeconfig.exists():
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(admin, kubeconfig)
    token = (data / "join-token").read_text().strip()
    return m.server, token


# -- waiting on the API ---------------------------------------------------------------------------


def node_ready(node: dict[str, Any], since: float = 0.0) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def current_instance(client: Client, name: str) -> str | None:
    """The agent instance id the Node shows now (None: no Node, or an agent without one)."""
    try:
        return agent_instance(client.get(NODE, name))
    except ApiError as e:
        if e.code != 404:
            raise
        return None


def wait_node_ready(client: Client, name: str, timeout: float = 120.0,
                    replaced_instance: str | None = None) -> dict[str, Any]:
    """Wait until the Node is Ready; with `replaced_instance`, Ready under another agent
    instance (the agent that was just started, not the one it replaced)."""
    deadline = time.monotonic() + timeout
    last = "not registered yet"
    while time.monotonic() < deadline:
        try:
            node = client.get(NODE, name)
            if node_ready(node) and (replaced_instance is None or agent_instance(node) != replaced_instance):
                return node
            last = "registered, not Ready" if not node_ready(node) else "the new agent has not registered yet"
        except ApiError as e:
            last = e.message if e.code != 404 else "not registered yet"
        time.sleep(0.5)
    raise BootstrapError(f"{name}: the node did not become Ready within {timeout:g}s ({last})")


def apply_node_metadata(client: Client, node: NodeSpec) -> bool:
    """Merge the inventory's labels and taints into the Node; True when something changed."""
    cur = client.get(NODE, node.name)
    labels = (cur.get("metadata") or {}).get("labels") or {}
    taints = (cur.get("spec") or {}).get("taints") or []
    patch: dict[str, Any] = {}
    if any(labels.get(k) != v for k, v in node.labels.items()):
        patch["metadata"] = {"labels": node.labels}
    want = [dict(t) for t in node.taints]
    keyed = {(t.get("key"), t.get("effect")) for t in want}
    missing = [t for t in want if not any(
        t.get("key") == c.get("key") and t.get("effect") == c.get("effect") and (t.get("value") or "") == (c.get("value") or "")
        for c in taints)]
    if missing:
        merged = [c for c in taints if (c.get("key"), c.get("effect")) not in keyed] + want
        patch["spec"] = {"taints": merged}
    if not patch:
        return False
    client.patch(NODE, node.name, patch)
    return True


# -- the whole run ----------------------------------------------------------------------------------


@dataclass
class Options:
    known_hosts: tuple[str, ...]
    accept_new: bool = False
    sudo_password: str | None = None
    wheelhouse: Path | None = None  # prebuilt; default: build from the source tree
    ready_timeout: float = 120.0
    force: bool = False  # reinstall even when the record matches (upgrades)


class Bootstrapper:
    """`cluster up` / `node add` / `node remove` over an inventory."""

    def __init__(self, inv: Inventory, opts: Options, kubeconfig: Path, progress: Progress | None = None) -> None:
        self.inv = inv
        self.opts = opts
        self.kubeconfig = kubeconfig
        self.progress = progress or (lambda msg: None)
        self._wheelhouse: Wheelhouse | None = None

    def wheelhouse(self) -> Wheelhouse:
        if self._wheelhouse is None:
            if self.opts.wheelhouse is not None:
                self._wheelhouse = wheelhouse_from_dir(self.opts.wheelhouse)
            else:
                cache = Path(os.path.expanduser(self.inv.master.data_dir)) / "wheelhouse"
                self._wheelhouse = build_wheelhouse(cache, progress=self.progress)
        return self._wheelhouse

    def connect(self, node: NodeSpec) -> SSHConnection:
        return SSHConnection(target_for(node, self.opts.known_hosts, self.opts.accept_new,
                                        self.opts.sudo_password)).connect()

    def client(self) -> Client:
        return Client.from_kubeconfig(str(self.kubeconfig))

    def check_all(self, nodes: list[NodeSpec]) -> dict[str, tuple[SSHConnection, dict[str, str]]]:
        """Connect to and check every node; raises one error listing every problem found."""
        from concurrent.futures import ThreadPoolExecutor

        problems: list[str] = []
        out: dict[str, tuple[SSHConnection, dict[str, str]]] = {}

        def one(node: NodeSpec) -> None:
            try:
                conn = self.connect(node)
            except BootstrapError as e:
                problems.append(str(e))
                return
            facts = NodeHost(conn, node).facts()
            found = compute_prereq_problems(facts, node, time.time())
            problems.extend(f"{node.name} ({node.address}): prerequisite {p}" for p in found)
            out[node.name] = (conn, facts)

        self.progress(f"checking prerequisites on {len(nodes)} node(s)")
        with ThreadPoolExecutor(max_workers=min(8, len(nodes)) or 1) as pool:
            list(pool.map(one, nodes))
        if problems:
            for conn, _ in out.values():
                conn.close()
            raise PrerequisiteError(sorted(problems))
        return out

    def up(self, names: list[str] | None = None) -> list[NodeResult]:
        from concurrent.futures import ThreadPoolExecutor

        nodes = [self.inv.node(n) for n in names] if names else list(self.inv.nodes)
        server, token = ensure_master(self.inv, self.kubeconfig, self.progress)
        checked = self.check_all(nodes)
        wh = self.wheelhouse()
        results: dict[str, NodeResult] = {}

        def one(node: NodeSpec) -> None:
            conn, facts = checked[node.name]
            res = NodeResult(node.name, node.address, version=wh.version)
            results[node.name] = res
            try:
                with self.client() as client:
                    self._install_one(NodeHost(conn, node), facts, server, token, wh, res, client)
            except BootstrapError as e:
                res.action = "failed"
                res.problems.append(str(e))
            except ApiError as e:
                res.action = "failed"
                res.problems.append(f"{node.name}: {e.message}")
            finally:
                conn.close()

        with ThreadPoolExecutor(max_workers=min(8, len(nodes)) or 1) as pool:
            list(pool.map(one, nodes))
        return [results[n.name] for n in nodes]

    def _install_one(self, host: NodeHost, facts: dict[str, str], server: str, token: str,
                     wh: Wheelhouse, res: NodeResult, client: Client) -> None:
        node = host.node
        systemd = host.uses_systemd(facts)
        res.service = "systemd" if systemd else "supervisor"
        env = agent_env(server, token, node)
        chash = config_hash(env, systemd)
        record = host.installed()
        fresh = not record
        if record.get("digest") != wh.digest or self.opts.force:
            self.progress(f"{node.name}: installing dockyard {wh.version}")
            host.upload_wheelhouse(wh, self.progress)
            host.install_venv(wh, force=not fresh or self.opts.force)
            res.changes.append("software")
        if record.get("config") != chash:
            host.write_file(ENV_FILE, env, "0600")
            host.install_service(systemd)
            res.changes.append("config")
        running = host.running(systemd)
        replaced: str | None = None
        if res.changes or not running:
            replaced = current_instance(client, node.name) if running else None
            self.progress(f"{node.name}: starting the agent ({res.service})")
            host.start(systemd)
            if not res.changes:
                res.changes.append("restarted")
        host.write_file(INSTALLED, json.dumps({"version": wh.version, "digest": wh.digest, "config": chash}))
        self.progress(f"{node.name}: waiting for the node to be Ready")
        wait_node_ready(client, node.name, self.opts.ready_timeout, replaced_instance=replaced)
        if apply_node_metadata(client, node):
            res.changes.append("labels/taints")
        res.action = "installed" if fresh else ("updated" if res.changes else "unchanged")

    def remove(self, name: str, drain_timeout: float = 120.0) -> NodeResult:
        from .upgrade import cordon, drain

        node = self.inv.node(name)
        res = NodeResult(node.name, node.address, action="removed")
        with self.client() as client:
            exists = True
            try:
                client.get(NODE, name)
            except ApiError as e:
                if e.code != 404:
                    raise
                exists = False
            if exists:
                self.progress(f"{name}: cordon and drain")
                cordon(client, name)
                drain(client, name, force=True, ignore_daemonsets=True, timeout=drain_timeout,
                      progress=self.progress)
            with self.connect(node) as conn:
                self.progress(f"{name}: stopping and uninstalling the agent")
                res.changes = NodeHost(conn, node).uninstall()
            if exists:
                try:
                    client.delete(NODE, name)
                except ApiError as e:
                    if e.code != 404:
                        raise
                res.changes.append("node object")
        return res


class PrerequisiteError(BootstrapError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("prerequisites not met:\n  " + "\n  ".join(problems))
        self.problems = problems
