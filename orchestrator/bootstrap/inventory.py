"""The cluster inventory (`cluster.yaml`): the master, the nodes and how to reach them.

```yaml
master: {address: 10.0.0.1, port: 6443, dataDir: /var/lib/dockyard, nodeGrace: 20, evictionTimeout: 10}
defaults: {user: root, port: 22, keyFile: ~/.ssh/id_ed25519, sudo: false}
nodes:
  - {name: node-1, address: 10.0.0.11, labels: {zone: a}, taints: [{key: k, value: v, effect: NoSchedule}]}
```

Each node inherits every key of `defaults` it does not set itself. Validation collects every
problem and names each by its path (`nodes[1].address: required`), so one run shows all
mistakes. See deploy/cluster.example.yaml for every field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import BootstrapError

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_KEYS = {
    "name", "address", "nodeIP", "user", "port", "keyFile", "useAgent", "sudo", "labels", "taints",
    "hostKeyFingerprint", "python", "minDiskMB",
}
MASTER_KEYS = {"address", "port", "dataDir", "nodeGrace", "evictionTimeout", "listen"}


class InventoryError(BootstrapError):
    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: invalid inventory:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass
class MasterSpec:
    address: str
    port: int = 6443
    data_dir: str = "/var/lib/dockyard"
    node_grace: float | None = None
    eviction_timeout: float | None = None

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.port}"


@dataclass
class NodeSpec:
    name: str
    address: str
    node_ip: str
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    use_agent: bool = False
    sudo: bool | str = False  # True: passwordless sudo -n; "password": prompt once
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    host_key_fingerprint: str | None = None
    python: str = "python3"
    min_disk_mb: int = 512


@dataclass
class Inventory:
    master: MasterSpec
    nodes: list[NodeSpec]
    source: str = "<inventory>"

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise BootstrapError(f"{self.source}: no node named {name!r} (known: {', '.join(n.name for n in self.nodes)})")


def _is_ip_or_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(re.match(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$", value))


def _port(value: Any, path: str, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        problems.append(f"{path}: must be a port number (1-65535), got {value!r}")
        return 0
    return value


def _number(value: Any, path: str, problems: list[str]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        problems.append(f"{path}: must be a non-negative number of seconds, got {value!r}")
        return None
    return float(value)


def parse_inventory(data: Any, source: str = "<inventory>") -> Inventory:
    problems: list[str] = []
    if not isinstance(data, dict):
        raise InventoryError(source, ["the document must be a mapping with master and nodes"])
    for key in data:
        if key not in ("master", "nodes", "defaults"):
            problems.append(f"{key}: unknown field (expected master, defaults, nodes)")

    m = data.get("master")
    master = MasterSpec(address="")
    if not isinstance(m, dict):
        problems.append("master: required (a mapping with address)")
    else:
        for key in m:
            if key not in MASTER_KEYS:
                problems.append(f"master.{key}: unknown field")
        addr = m.get("address")
        if not addr:
            problems.append("master.address: required")
        elif not isinstance(addr, str) or not _is_ip_or_host(addr):
            problems.append(f"master.address: not an IP address or host name: {addr!r}")
        else:
            master.address = addr
        if "port" in m:
            master.port = _port(m["port"], "master.port", problems)
        if "dataDir" in m:
            if not isinstance(m["dataDir"], str) or not m["dataDir"]:
                problems.append("master.dataDir: must be a path")
            else:
                master.data_dir = m["dataDir"]
        master.node_grace = _number(m.get("nodeGrace"), "master.nodeGrace", problems)
        master.eviction_timeout = _number(m.get("evictionTimeout"), "master.evictionTimeout", problems)

    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append("defaults: must be a mapping")
        defaults = {}
    for key in defaults:
        if key not in NODE_KEYS - {"name", "address", "nodeIP", "hostKeyFingerprint"}:
            problems.append(f"defaults.{key}: unknown or per-node-only field")

    raw_nodes = data.get("nodes")
    nodes: list[NodeSpec] = []
    if not isinstance(raw_nodes, list) or not raw_nodes:
        problems.append("nodes: required (a list of at least one node)")
        raw_nodes = []
    seen_names: dict[str, int] = {}
    seen_addr: dict[tuple[str, int], int] = {}
    for i, raw in enumerate(raw_nodes):
        p = f"nodes[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{p}: must be a mapping")
            continue
        for key in raw:
            if key not in NODE_KEYS:
                problems.append(f"{p}.{key}: unknown field")
        n = {**defaults, **raw}
        name = n.get("name")
        if not name:
            problems.append(f"{p}.name: required")
            name = ""
        elif not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"{p}.name: must be a lowercase DNS name (a-z, 0-9, '-', '.'), got {name!r}")
        elif name in seen_names:
            problems.append(f"{p}.name: duplicate of nodes[{seen_names[name]}].name ({name})")
        else:
            seen_names[name] = i
        address = n.get("address")
        if not address:
            problems.append(f"{p}.address: required")
            address = ""
        elif not isinstance(address, str) or not _is_ip_or_host(address):
            problems.append(f"{p}.address: not an IP address or host name: {address!r}")
        node_ip = n.get("nodeIP") or address
        if n.get("nodeIP"):
            try:
                ipaddress.ip_address(str(n["nodeIP"]))
            except ValueError:
                problems.append(f"{p}.nodeIP: not an IP address: {n['nodeIP']!r}")
        port = _port(n.get("port", 22), f"{p}.port", problems)
        if address and port and (address, port) in seen_addr:
            problems.append(f"{p}.address: {address}:{port} is also nodes[{seen_addr[(address, port)]}]")
        elif address:
            seen_addr[(address, port)] = i
        user = n.get("user", "root")
        if not isinstance(user, str) or not user:
            problems.append(f"{p}.user: must be a user name")
            user = "root"
        key_file = n.get("keyFile")
        use_agent = n.get("useAgent", False)
        if not isinstance(use_agent, bool):
            problems.append(f"{p}.useAgent: must be true or false")
        if key_file is not None and not isinstance(key_file, str):
            problems.append(f"{p}.keyFile: must be a path")
        if key_file and use_agent is True:
            problems.append(f"{p}.keyFile: set either keyFile or useAgent, not both")
        sudo = n.get("sudo", False)
        if sudo not in (True, False, "password"):
            problems.append(f"{p}.sudo: must be true, false or \"password\", got {sudo!r}")
        labels = n.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(k, str) for k in labels):
            problems.append(f"{p}.labels: must be a mapping of strings")
            labels = {}
        labels = {k: str(v) for k, v in labels.items()}
        taints = n.get("taints") or []
        if not isinstance(taints, list):
            problems.append(f"{p}.taints: must be a list")
            taints = []
        for j, taint in enumerate(taints):
            tp = f"{p}.taints[{j}]"
            if not isinstance(taint, dict):
                problems.append(f"{tp}: must be a mapping with key, effect")
                continue
            if not taint.get("key"):
                problems.append(f"{tp}.key: required")
            if taint.get("effect") not in TAINT_EFFECTS:
                problems.append(f"{tp}.effect: must be one of {', '.join(TAINT_EFFECTS)}")
        fp = n.get("hostKeyFingerprint")
        if fp is not None and (not isinstance(fp, str) or not fp.startswith("SHA256:")):
            problems.append(f"{p}.hostKeyFingerprint: must look like SHA256:<base64>, got {fp!r}")
        python = n.get("python", "python3")
        min_disk = n.get("minDiskMB", 512)
        if isinstance(min_disk, bool) or not isinstance(min_disk, int) or min_disk < 0:
            problems.append(f"{p}.minDiskMB: must be a whole number of MB")
            min_disk = 512
        nodes.append(NodeSpec(
            name=name, address=address, node_ip=str(node_ip), user=user, port=port,
            key_file=key_file if isinstance(key_file, str) else None, use_agent=use_agent is True,
            sudo=sudo if sudo in (True, False, "password") else False, labels=labels,
            taints=[dict(t) for t in taints if isinstance(t, dict)], host_key_fingerprint=fp,
            python=str(python), min_disk_mb=min_disk,
        ))
    if problems:
        raise InventoryError(source, problems)
    return Inventory(master, nodes, source)


def load_inventory(path: str | Path) -> Inventory:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as e:
        raise BootstrapError(f"{p}: cannot read the inventory: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise BootstrapError(f"{p}: not valid YAML: {e}") from None
    return parse_inventory(data, str(p))
