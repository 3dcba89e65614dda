"""The Node object this agent owns: registration, status and heartbeat.

Pure builders (``node_object``, ``node_status``, ``parse_meminfo``, ``capacity``) turn
engine facts (``docker info`` / ``docker version``) and ``/proc/meminfo`` into Kubernetes
``Node`` fields; ``NodeManager`` does the I/O: create the Node (or, when it already exists,
merge our labels and addresses into it), then patch ``/status`` every heartbeat with the
``Ready`` condition's ``lastHeartbeatTime``. Condition ``lastTransitionTime`` values are
kept for as long as a condition's status does not change.

Two kinds of heartbeat, as kubelet has: the agent renews its ``coordination.k8s.io/v1``
Lease ``kube-node-lease/<node>`` every few seconds (``renew_lease``: one small PUT of
``spec.renewTime``; the master's node lifecycle controller judges liveness by it), and posts
the full Node status much less often (``heartbeat``: capacity, addresses, conditions),
at once when a condition changes. The Lease is owned by the Node (ownerReference), so it
goes when the Node is deleted.

The master may set ``spec.podCIDR``; the manager remembers the latest value it saw (every
status patch returns the whole Node) so the pod network can use it as its subnet.
The agent's HTTP endpoints (``agent.server``) publish their ports here: the HTTPS port
(logs, exec) as ``status.daemonEndpoints.kubeletEndpoint.Port``, where the master's proxy
looks for it, and the plain metrics port as the ``dockyard.io/metrics-port`` annotation.
Later additions (disk/memory pressure from real measurements) fit into ``conditions()``.
"""

from __future__ import annotations

import logging
import platform
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from orchestrator.client import Client
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import by_kind
from orchestrator.objects.nodeinfo import (
    AGENT_INSTANCE_ANNOTATION,
    POD_RUNTIME_ANNOTATION,
    POD_RUNTIME_REVISION,
)

from .status import rfc3339

log = logging.getLogger(__name__)

NODE = by_kind("v1", "Node")
LEASE = by_kind("coordination.k8s.io/v1", "Lease")
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40  # seconds, kubelet's default; the master's own grace decides liveness
METRICS_PORT_ANNOTATION = "dockyard.io/metrics-port"
MAX_PODS = 110
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
        "ppc64le": "ppc64le", "s390x": "s390x", "i686": "386", "i386": "386"}


def dockyard_version() -> str:
    try:
        return metadata.version("dockyard")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def go_arch(machine: str) -> str:
    return ARCH.get(machine.lower(), machine.lower())


def parse_meminfo(text: str) -> int | None:
    """MemTotal in KiB from /proc/meminfo text."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1])
    return None


def read_meminfo_kib(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path) as f:
            return parse_meminfo(f.read())
    except OSError:
        return None


def capacity(info: dict[str, Any], meminfo_kib: int | None) -> dict[str, str]:
    """cpu from the engine's NCPU, memory from /proc/meminfo (engine MemTotal as fallback)."""
    kib = meminfo_kib if meminfo_kib else int(info.get("MemTotal") or 0) // 1024
    return {"cpu": str(int(info.get("NCPU") or 1)), "memory": f"{kib}Ki", "pods": str(MAX_PODS)}


def node_object(name: str, arch: str, hostname: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": hostname,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
            },
        },
        "spec": {},
    }


def node_status(
    info: dict[str, Any],
    version: dict[str, Any],
    meminfo_kib: int | None,
    node_ip: str,
    hostname: str,
    conditions: list[dict[str, Any]],
    kubelet_port: int | None = None,
) -> dict[str, Any]:
    cap = capacity(info, meminfo_kib)
    arch = go_arch(str(info.get("Architecture") or platform.machine()))
    out: dict[str, Any] = {
        "capacity": cap,
        "allocatable": dict(cap),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": node_ip},
            {"type": "Hostname", "address": hostname},
        ],
        "nodeInfo": {
            "containerRuntimeVersion": f"docker://{version.get('Version') or info.get('ServerVersion', '')}",
            "kubeletVersion": f"dockyard-{dockyard_version()}",
            "kubeProxyVersion": f"dockyard-{dockyard_version()}",
            "operatingSystem": str(info.get("OSType") or "linux"),
            "architecture": arch,
            "osImage": str(info.get("OperatingSystem") or ""),
            "kernelVersion": str(info.get("KernelVersion") or ""),
            "machineID": _read_first("/etc/machine-id") or str(info.get("ID") or ""),
            "systemUUID": _read_first("/sys/class/dmi/id/product_uuid") or _read_first("/etc/machine-id"),
            "bootID": _read_first("/proc/sys/kernel/random/boot_id"),
        },
    }
    if kubelet_port:
        out["daemonEndpoints"] = {"kubeletEndpoint": {"Port": int(kubelet_port)}}
    return out


def micro_time(t: float) -> str:
    """A metav1.MicroTime: RFC 3339 with microseconds."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(node_name: str, node_uid: str | None, now: float, duration: int = LEASE_DURATION) -> dict[str, Any]:
    """The node's heartbeat Lease as the agent writes it."""
    meta: dict[str, Any] = {"name": node_name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration, "renewTime": micro_time(now)},
    }


def condition(
    ctype: str,
    ok: bool,
    reason: str,
    message: str,
    now: float,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    status = "True" if ok else "False"
    ltt = previous.get("lastTransitionTime") if previous and previous.get("status") == status else None
    return {
        "type": ctype,
        "status": status,
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": rfc3339(now),
        "lastTransitionTime": ltt or rfc3339(now),
    }


class NodeManager:
    """Registers the Node and keeps its status fresh."""

    def __init__(
        self,
        client: Client,
        name: str,
        node_ip: str,
        runtime_facts: Callable[[], tuple[dict[str, Any], dict[str, Any]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.name = name
        self.node_ip = node_ip
        self.hostname = socket.gethostname()
        self.runtime_facts = runtime_facts  # () -> (docker info, docker version)
        self.clock = clock
        self._conditions: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.pod_cidr: str | None = None
        self.runtime_ok = True
        self.runtime_message = ""
        self.kubelet_port: int | None = None  # set by agent.server before registration
        self.metrics_port: int | None = None
        self.last_status: dict[str, Any] | None = None
        self.node_uid: str | None = None
        self.instance = uuid.uuid4().hex  # this agent process (see orchestrator.objects.nodeinfo)
        self._lease: dict[str, Any] | None = None  # the last Lease written (with its resourceVersion)
        self._lease_lock = threading.Lock()
        self.lease_renewals = 0

    def conditions(self, now: float) -> list[dict[str, Any]]:
        prev = self._conditions
        ready_msg = "agent is posting ready status" if self.runtime_ok else self.runtime_message
        conds = [
            condition("MemoryPressure", False, "AgentHasSufficientMemory", "agent has sufficient memory available",
                      now, prev.get("MemoryPressure")),
            condition("DiskPressure", False, "AgentHasNoDiskPressure", "agent has no disk pressure",
                      now, prev.get("DiskPressure")),
            condition("Ready", self.runtime_ok, "AgentReady" if self.runtime_ok else "ContainerRuntimeDown",
                      ready_msg, now, prev.get("Ready")),
        ]
        self._conditions = {c["type"]: c for c in conds}
        return conds

    def _status(self) -> dict[str, Any]:
        try:
            info, version = self.runtime_facts()
            self.runtime_ok, self.runtime_message = True, ""
            self._facts = (info, version)
        except Exception as e:  # the engine went away: report NotReady with the last facts
            self.runtime_ok, self.runtime_message = False, f"container runtime is down: {e}"
            info, version = getattr(self, "_facts", ({}, {}))
        status = node_status(
            info, version, read_meminfo_kib(), self.node_ip, self.hostname, self.conditions(self.clock()),
            self.kubelet_port,
        )
        self.last_status = status
        return status

    def _remember(self, node: dict[str, Any]) -> None:
        if isinstance(node, dict):
            self.node_uid = (node.get("metadata") or {}).get("uid") or self.node_uid
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr and cidr != self.pod_cidr:
                log.info("node %s: podCIDR %s", self.name, cidr)
                self.pod_cidr = cidr
            # The server's view wins (the node controller may have marked us Unknown).
            for c in (node.get("status") or {}).get("conditions") or []:
                if c.get("type"):
                    self._conditions[c["type"]] = c

    def register(self) -> dict[str, Any]:
        """Create the Node, or adopt the existing one (labels merged), then post status."""
        with self._lock:
            info, _ = self.runtime_facts()
            arch = go_arch(str(info.get("Architecture") or platform.machine()))
            body = node_object(self.name, arch, self.name)
            annotations = {AGENT_INSTANCE_ANNOTATION: self.instance, POD_RUNTIME_ANNOTATION: str(POD_RUNTIME_REVISION)}
            if self.metrics_port:
                annotations[METRICS_PORT_ANNOTATION] = str(self.metrics_port)
            body["metadata"]["annotations"] = annotations
            try:
                node = self.client.create(body)
            except ApiError as e:
                if e.code != 409:
                    raise
                meta = {"labels": body["metadata"]["labels"], "annotations": annotations}
                node = self.client.patch(NODE, self.name, {"metadata": meta})
            self._remember(node)
        return self.heartbeat()

    def heartbeat(self) -> dict[str, Any]:
        """Patch the status (capacity, addresses, conditions with a fresh heartbeat)."""
        with self._lock:
            body = {"status": self._status()}
            try:
                node = self.client.patch(NODE, self.name, body, patch_type="merge", sub="status")
            except ApiError as e:
                if e.code != 404:
                    raise
                node = None
        if node is None:
            log.warning("node %s disappeared from the API; registering it again", self.name)
            return self.register()
        with self._lock:
            self._remember(node)
        return node


    def renew_lease(self) -> dict[str, Any]:
        """Renew (or create) the node's Lease: normally one PUT of the last written object
        with a new renewTime; a conflict or a missing Lease costs one more request."""
        with self._lease_lock:
            now = self.clock()
            want = lease_object(self.name, self.node_uid, now)
            for _ in range(3):
                if self._lease is None:
                    try:
                        self._lease = self.client.get(LEASE, self.name, LEASE_NAMESPACE)
                    except ApiError as e:
                        if e.code != 404:
                            raise
                        try:
                            self._lease = self.client.create(want, LEASE_NAMESPACE)
                            self.lease_renewals += 1
                            return self._lease
                        except ApiError as e2:
                            if e2.code != 409:
                                raise
                            continue  # created meanwhile: read it and renew it
                body = dict(self._lease)
                body.setdefault("apiVersion", want["apiVersion"])
                body.setdefault("kind", want["kind"])
                meta = dict(body.get("metadata") or {})
                if want["metadata"].get("ownerReferences") and not meta.get("ownerReferences"):
                    meta["ownerReferences"] = want["metadata"]["ownerReferences"]
                body["metadata"] = meta
                body["spec"] = dict(body.get("spec") or {}, **want["spec"])
                try:
                    self._lease = self.client.replace(body)
                    self.lease_renewals += 1
                    return self._lease
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise
                    self._lease = None  # someone else wrote or deleted it: start from the server's copy
            raise ApiError(409, "Conflict", f"could not renew the Lease of node {self.name}: repeated conflicts")


def _read_first(path: str) -> str:
    """The first line of a small system file, or "" when it is absent or unreadable."""
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return ""
