"""The agent's only door to the container engine: Docker through the ``docker`` SDK.

``DockerRuntime`` turns pod specs into Docker containers and Docker containers back into
``agent.pods.ObservedContainer`` values. Everything the agent knows about a pod on this
host is stored in container labels (pod uid/name/namespace, container name, spec hash,
restart count, ``dockyard.io/managed=true``, and the node name), so a restarted agent
rebuilds its view from ``docker ps -a`` and adopts running containers untouched.

Layout of a pod: a *sandbox* container running the pause image owns the pod's network
namespace (its hostname is the pod name). Docker creates it with ``network_mode=none``;
``agent.podnet`` then plugs it into the bridge of the ``dockyard-pods`` Docker network with
a veth and the pod IP, which is chosen beforehand and kept in the sandbox's
``dockyard.io/pod-ip`` label. App containers join it with
``network_mode=container:<sandbox id>`` and so share IP, ports and localhost. A
``hostNetwork`` pod's sandbox uses the host's network instead (no address of its own: the
pod IP is the node's, labelled the same way). At startup
(``check_sandboxes``) a running sandbox whose veth is missing (an agent killed between
start and attach) is stopped, so the pod gets a new one. Container names are
``dy_<namespace>_<pod>_<container>_<uid[:8]>_<restart count>`` (``POD`` for the sandbox).

Every Docker SDK error is translated here into ``RuntimeFailure`` (the package's
exception root) or one of its subclasses; ``reason`` carries the Kubernetes waiting
reason where there is one (``ErrImagePull``, ``ErrImageNeverPull``,
``CreateContainerError``, ``RunContainerError``).

Inspect results are cached per (container id, state) so a resync only lists containers
and re-inspects the ones whose state changed. Calls are thread-safe: the SDK client is
shared by the agent's worker threads (its connection pool is sized for that).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker
import docker.errors
import docker.types
from docker.models.containers import _create_container_args

from orchestrator.objects.validation import parse_cpu_quantity, parse_memory_quantity

from . import podnet
from .pods import SANDBOX_NAME, ObservedContainer, ObservedPod, container_hash
from .volumes import BindMount

log = logging.getLogger(__name__)

NETWORK = "dockyard-pods"
PAUSE_IMAGE = "dockyard/pause:1"

L_MANAGED = "dockyard.io/managed"
L_UID = "dockyard.io/pod-uid"
L_POD = "dockyard.io/pod-name"
L_NS = "dockyard.io/pod-namespace"
L_CONTAINER = "dockyard.io/container-name"
L_HASH = "dockyard.io/container-hash"
L_RESTARTS = "dockyard.io/restart-count"
L_NODE = "dockyard.io/node"
L_POD_IP = "dockyard.io/pod-ip"  # sandboxes: the address agent.podnet gave the pod
L_HOST_NETWORK = "dockyard.io/host-network"  # sandboxes of hostNetwork pods (pod IP = node IP)

SECURITY_OPT = ["no-new-privileges"]
POOL_SIZE = 32
_EXEC_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dockyard-exec")


# -- errors ---------------------------------------------------------------------------------


class RuntimeFailure(Exception):
    """Root of every error raised by the runtime layer."""

    reason = "RuntimeError"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason


class RuntimeUnavailable(RuntimeFailure):
    reason = "RuntimeUnavailable"


class NotFound(RuntimeFailure):
    reason = "NotFound"


class ImageError(RuntimeFailure):
    reason = "ErrImagePull"


class ContainerError(RuntimeFailure):
    reason = "CreateContainerError"


@contextlib.contextmanager
def _translate(what: str, cls: type[RuntimeFailure] = RuntimeFailure, reason: str | None = None) -> Iterator[None]:
    try:
        yield
    except RuntimeFailure:
        raise
    except docker.errors.NotFound as e:
        raise NotFound(f"{what}: {_explain(e)}") from None
    except docker.errors.APIError as e:
        raise cls(f"{what}: {_explain(e)}", reason) from None
    except docker.errors.DockerException as e:
        raise RuntimeUnavailable(f"{what}: {e}") from None
    except OSError as e:  # requests' ConnectionError is an OSError
        raise RuntimeUnavailable(f"{what}: cannot reach the Docker engine: {e}") from None


def _explain(e: docker.errors.APIError) -> str:
    return str(e.explanation or e)


# -- pure helpers ---------------------------------------------------------------------------

def parse_cpu(q: Any) -> float:
    """CPU quantity ("500m", "2", 1.5) → cores (the object model's parser)."""
    return parse_cpu_quantity(q)


def parse_memory(q: Any) -> int:
    """Memory quantity ("128Mi", "1G", "1e6", 1024) → bytes (the object model's parser)."""
    return parse_memory_quantity(q)


@dataclass(frozen=True)
class ContainerOptions:
    """What the executor resolved for one container beyond its spec.

    ``env`` replaces the spec's literal ``env`` (it holds the resolved ``valueFrom`` /
    ``envFrom`` values); ``command``/``args`` are the ``$(VAR)``-expanded forms; ``mounts``
    are the pod volumes bound into the container.
    """

    env: list[tuple[str, str]] | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    mounts: tuple[BindMount, ...] = ()


def security_kwargs(pod: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Docker arguments for the pod and container ``securityContext`` (container wins)."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = spec.get("securityContext") or {}
    kw: dict[str, Any] = {}
    user = sc.get("runAsUser", psc.get("runAsUser"))
    group = sc.get("runAsGroup", psc.get("runAsGroup"))
    if user is not None:
        kw["user"] = f"{int(user)}:{int(group)}" if group is not None else str(int(user))
    groups = [str(int(g)) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        groups.append(str(int(psc["fsGroup"])))
    if groups:
        kw["group_add"] = groups
    privileged = bool(sc.get("privileged"))
    if privileged:
        kw["privileged"] = True
    if sc.get("readOnlyRootFilesystem"):
        kw["read_only"] = True
    # no-new-privileges unless escalation is explicitly allowed (or the container is privileged).
    escalate = sc.get("allowPrivilegeEscalation")
    kw["security_opt"] = [] if privileged or escalate is True else list(SECURITY_OPT)
    caps = sc.get("capabilities") or {}
    if caps.get("add"):
        kw["cap_add"] = [str(c) for c in caps["add"]]
    if caps.get("drop"):
        kw["cap_drop"] = [str(c) for c in caps["drop"]]
    return kw


def run_as_non_root_error(pod: dict[str, Any], spec: dict[str, Any], image_user: str) -> str | None:
    """Why ``runAsNonRoot: true`` forbids this container, or None."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = spec.get("securityContext") or {}
    if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
        return None
    user = sc.get("runAsUser", psc.get("runAsUser"))
    if user is not None:
        return "container's runAsUser breaks non-root policy" if int(user) == 0 else None
    name = image_user.split(":", 1)[0]
    if name in ("", "0", "root"):
        return "container has runAsNonRoot and image will run as root"
    if not name.isdigit():
        return f"container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is non-root"
    return None


def split_image(ref: str) -> tuple[str, str | None]:
    """"repo[:tag][@digest]" → (repo, tag-or-digest); tag None when absent."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, None


def pull_policy(spec: dict[str, Any]) -> str:
    """imagePullPolicy, defaulted like Kubernetes (Always for :latest or no tag)."""
    p = spec.get("imagePullPolicy")
    if p:
        return str(p)
    _, tag = split_image(str(spec.get("image", "")))
    return "Always" if tag in (None, "latest") else "IfNotPresent"


def container_name(namespace: str, pod: str, container: str, uid: str, restart_count: int) -> str:
    return f"dy_{namespace}_{pod}_{container}_{uid[:8]}_{restart_count}"


def parse_time(s: str | None) -> float | None:
    """Docker timestamp (RFC 3339, nanoseconds) → epoch seconds; None for the zero time."""
    if not s or s.startswith("0001-01-01"):
        return None
    s = s.rstrip("Z")
    frac = ""
    if "." in s:
        s, frac = s.split(".", 1)
        frac = re.sub(r"[^0-9].*$", "", frac)
    dt = datetime.fromisoformat(s + "+00:00")
    return dt.timestamp() + (float(f"0.{frac}") if frac else 0.0)


def container_kwargs(
    pod: dict[str, Any],
    spec: dict[str, Any],
    sandbox_id: str,
    restart_count: int,
    labels: dict[str, str],
    options: ContainerOptions | None = None,
) -> dict[str, Any]:
    """Docker create arguments for one app/init container (Kubernetes field mapping)."""
    opts = options or ContainerOptions()
    meta = pod.get("metadata", {})
    kw: dict[str, Any] = {
        "name": container_name(meta["namespace"], meta["name"], spec["name"], meta["uid"], restart_count),
        "labels": labels,
        "network_mode": f"container:{sandbox_id}",
        "security_opt": list(SECURITY_OPT),
        "detach": True,
    }
    # Kubernetes command = Docker entrypoint, args = Docker cmd. With a command and no
    # args the image's CMD is dropped (the engine does that when Entrypoint is set).
    command = opts.command if opts.command is not None else spec.get("command")
    args = opts.args if opts.args is not None else spec.get("args")
    if command:
        kw["entrypoint"] = [str(x) for x in command]
    if args:
        kw["command"] = [str(x) for x in args]
    if opts.env is not None:
        env = dict(opts.env)
    else:
        env = {e["name"]: str(e.get("value", "")) for e in spec.get("env") or [] if "valueFrom" not in e}
    if env:
        kw["environment"] = env
    kw.update(security_kwargs(pod, spec))
    if opts.mounts:
        kw["mounts"] = [
            docker.types.Mount(target=m.target, source=m.source, type="bind", read_only=m.read_only)
            for m in opts.mounts
        ]
    if spec.get("workingDir"):
        kw["working_dir"] = spec["workingDir"]
    if spec.get("tty"):
        kw["tty"] = True
    if spec.get("stdin"):
        kw["stdin_open"] = True
    resources = spec.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    if "cpu" in limits:
        kw["nano_cpus"] = int(parse_cpu(limits["cpu"]) * 1e9)
    if "memory" in limits:
        kw["mem_limit"] = parse_memory(limits["memory"])
        kw["memswap_limit"] = kw["mem_limit"]  # no swap beyond the limit, as on a kubelet node
    cpu_req = requests.get("cpu", limits.get("cpu"))
    if cpu_req is not None:
        kw["cpu_shares"] = max(2, int(parse_cpu(cpu_req) * 1024))
    return kw


def observe(attrs: dict[str, Any], network: str = NETWORK) -> ObservedContainer:
    """Decode `docker inspect` output of a managed container."""
    cfg = attrs.get("Config") or {}
    labels = cfg.get("Labels") or {}
    state = attrs.get("State") or {}
    nets = (attrs.get("NetworkSettings") or {}).get("Networks") or {}
    created = parse_time(attrs.get("Created")) or 0.0
    try:
        restarts = int(labels.get(L_RESTARTS, "0"))
    except ValueError:
        restarts = 0
    status = str(state.get("Status") or "unknown")
    return ObservedContainer(
        id=attrs["Id"],
        name=labels.get(L_CONTAINER, ""),
        pod_uid=labels.get(L_UID, ""),
        pod_name=labels.get(L_POD, ""),
        pod_namespace=labels.get(L_NS, ""),
        hash=labels.get(L_HASH, ""),
        restart_count=restarts,
        state=status,
        exit_code=state.get("ExitCode") if status in ("exited", "dead", "created") else None,
        created_at=created,
        started_at=parse_time(state.get("StartedAt")),
        finished_at=parse_time(state.get("FinishedAt")),
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        image=str(cfg.get("Image") or ""),
        image_id=str(attrs.get("Image") or ""),
        # our own attachment's address (agent.podnet); sandboxes Docker attached itself
        # (made by older agents) have it in their network settings
        ip=str(labels.get(L_POD_IP) or (nets.get(network) or {}).get("IPAddress") or ""),
    )


# -- the runtime ----------------------------------------------------------------------------


class DockerRuntime:
    """Pods on one Docker engine."""

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        base_url: str | None = None,
        network: str = NETWORK,
        pause_image: str = PAUSE_IMAGE,
        node_name: str | None = None,
    ) -> None:
        with _translate("connecting to Docker", RuntimeUnavailable):
            if client is None:
                if base_url:
                    client = docker.DockerClient(base_url=base_url, version="auto", max_pool_size=POOL_SIZE)
                else:
                    client = docker.from_env(version="auto", max_pool_size=POOL_SIZE)
        self.client = client
        self.api = client.api
        self.network = network
        self.pause_image = pause_image
        self.node_name = node_name
        self._network_id: str | None = None
        # cluster DNS for sandboxes: nameservers (set by the agent once its DNS server runs)
        # and the cluster domain for the search path
        self.dns_servers: list[str] = []
        self.cluster_domain = "cluster.local"
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, ObservedContainer]] = {}
        self._bridge: podnet.Bridge | None = None
        self.ipam = podnet.PodIPAM()

    @classmethod
    def from_url(cls, url: str | None = None, **kw: Any) -> DockerRuntime:
        return cls(base_url=url, **kw)

    def bind_node(self, node_name: str) -> None:
        """Scope listing and labels to one node (so agents sharing an engine keep apart)."""
        self.node_name = node_name

    def close(self) -> None:
        self.client.close()

    # -- engine facts -------------------------------------------------------------------

    def ping(self) -> None:
        with _translate("ping", RuntimeUnavailable):
            self.api.ping()

    def info(self) -> dict[str, Any]:
        with _translate("docker info", RuntimeUnavailable):
            return self.api.info()

    def version(self) -> dict[str, Any]:
        with _translate("docker version", RuntimeUnavailable):
            return self.api.version()

    # -- images -------------------------------------------------------------------------

    def image_id(self, ref: str) -> str | None:
        try:
            with _translate(f"inspecting image {ref}"):
                return str(self.api.inspect_image(ref)["Id"])
        except NotFound:
            return None

    def image_exists(self, ref: str) -> bool:
        return self.image_id(ref) is not None

    def build_image(self, context_dir: str, tag: str, labels: dict[str, str] | None = None) -> str:
        with _translate(f"building image {tag}"):
            try:
                image, _ = self.client.images.build(
                    path=context_dir, tag=tag, rm=True, forcerm=True, labels=labels or {}
                )
            except docker.errors.BuildError as e:
                lines = [str(x.get("stream") or x.get("error") or "") for x in e.build_log]
                raise RuntimeFailure(f"building image {tag} failed: {e.msg}; {''.join(lines)[-500:]}") from None
            return str(image.id)

    def pull_image(self, ref: str) -> str:
        repo, tag = split_image(ref)
        with _translate(f"pulling image {ref}", ImageError, "ErrImagePull"):
            self.api.pull(repo, tag=tag or "latest")
        found = self.image_id(ref)
        if found is None:
            raise ImageError(f"pulling image {ref}: image not present after pull", "ErrImagePull")
        return found

    def ensure_image(self, ref: str, policy: str = "IfNotPresent") -> str:
        """Make `ref` available per imagePullPolicy; returns the image id."""
        if policy == "Always":
            try:
                return self.pull_image(ref)
            except NotFound as e:
                raise ImageError(str(e), "ErrImagePull") from None
        local = self.image_id(ref)
        if local is not None:
            return local
        if policy == "Never":
            raise ImageError(
                f'Container image "{ref}" is not present with pull policy of Never', "ErrImageNeverPull"
            )
        try:
            return self.pull_image(ref)
        except NotFound as e:
            raise ImageError(str(e), "ErrImagePull") from None

    # -- network ------------------------------------------------------------------------

    def ensure_network(self, subnet: str | None = None) -> str:
        """Create the pod bridge network if missing (with `subnet` when given)."""
        with self._lock:
            if self._network_id:
                return self._network_id
            with _translate(f"pod network {self.network}"):
                try:
                    net = self.api.inspect_network(self.network)
                except docker.errors.NotFound:
                    ipam = None
                    if subnet:
                        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
                    try:
                        self.api.create_network(
                            self.network,
                            driver="bridge",
                            ipam=ipam,
                            labels={L_MANAGED: "true"},
                            check_duplicate=True,
                        )
                    except docker.errors.APIError as e:
                        if e.status_code != 409:
                            raise
                    net = self.api.inspect_network(self.network)
            have = [c.get("Subnet") for c in (net.get("IPAM") or {}).get("Config") or []]
            if subnet and subnet not in have:
                log.warning(
                    "network %s has subnet %s, not the node's podCIDR %s; recreate it to fix",
                    self.network, have, subnet,
                )
            self._network_id = str(net["Id"])
            self._bridge = self._bridge_of(net)
            return self._network_id

    @staticmethod
    def _bridge_of(net: dict[str, Any]) -> podnet.Bridge | None:
        configs = (net.get("IPAM") or {}).get("Config") or []
        subnet = next((c.get("Subnet") for c in configs if c.get("Subnet")), None)
        if not subnet:
            return None
        gateway = next((c.get("Gateway") for c in configs if c.get("Gateway")), None)
        if not gateway:
            # Docker gives the bridge the first host address when no gateway was asked for
            gateway = str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
        name = (net.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{str(net['Id'])[:12]}"
        return podnet.Bridge(name=name, gateway=str(gateway).split("/")[0], subnet=str(subnet))

    def network_info(self) -> tuple[str | None, str | None]:
        """(gateway address, Linux bridge name) of the pod network, creating nothing."""
        with contextlib.suppress(NotFound), _translate(f"pod network {self.network}"):
            try:
                net = self.api.inspect_network(self.network)
            except docker.errors.NotFound:
                return None, None
            bridge = self._bridge_of(net)
            if bridge is None:
                name = (net.get("Options") or {}).get("com.docker.network.bridge.name")
                return None, name or f"br-{str(net['Id'])[:12]}"
            return bridge.gateway, bridge.name
        return None, None

    def dns_kwargs(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Sandbox resolv.conf settings: the cluster DNS and the pod's search path.

        App containers join the sandbox's network namespace and use its /etc/resolv.conf.
        """
        spec = pod.get("spec", {})
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        if policy == "ClusterFirst" and spec.get("hostNetwork"):
            policy = "Default"  # as in Kubernetes: host-network pods opt in with ClusterFirstWithHostNet
        config = spec.get("dnsConfig") or {}
        servers: list[str] = []
        search: list[str] = []
        options: list[str] = []
        if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and self.dns_servers:
            ns = pod.get("metadata", {}).get("namespace") or "default"
            d = self.cluster_domain
            servers = list(self.dns_servers)
            search = [f"{ns}.svc.{d}", f"svc.{d}", d]
            options = ["ndots:5"]
        servers += [s for s in config.get("nameservers") or [] if s not in servers]
        search += [s for s in config.get("searches") or [] if s not in search]
        for opt in config.get("options") or []:
            if opt.get("name"):
                options.append(f"{opt['name']}:{opt['value']}" if opt.get("value") else str(opt["name"]))
        out: dict[str, Any] = {}
        if servers:
            out["dns"] = servers
        if search:
            out["dns_search"] = search
        if options:
            out["dns_opt"] = options
        return out

    def remove_network(self) -> None:
        with self._lock, contextlib.suppress(NotFound), _translate(f"removing network {self.network}"):
            self.api.remove_network(self.network)
        self._network_id = None

    # -- observation --------------------------------------------------------------------

    def _filters(self, uid: str | None = None) -> dict[str, Any]:
        labels = [f"{L_MANAGED}=true"]
        if self.node_name:
            labels.append(f"{L_NODE}={self.node_name}")
        if uid:
            labels.append(f"{L_UID}={uid}")
        return {"label": labels}

    @staticmethod
    def _linked_here(labels: dict[str, str]) -> bool:
        """A sandbox whose network link agent.podnet made (not host network, not Docker's)."""
        return labels.get(L_CONTAINER) == SANDBOX_NAME and bool(labels.get(L_POD_IP)) and not labels.get(L_HOST_NETWORK)

    def _addresses(self, summaries: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """(sandbox id, pod IP) from `docker ps` summaries: our label, or the address Docker
        gave a sandbox it attached itself."""
        out = []
        for s in summaries:
            labels = s.get("Labels") or {}
            if labels.get(L_CONTAINER) != SANDBOX_NAME or labels.get(L_HOST_NETWORK):
                continue
            nets = (s.get("NetworkSettings") or {}).get("Networks") or {}
            ip = labels.get(L_POD_IP) or (nets.get(self.network) or {}).get("IPAddress") or ""
            if ip:
                out.append((str(s["Id"]), str(ip)))
        return out

    def list_containers(self, uid: str | None = None) -> list[ObservedContainer]:
        """All managed containers (of one pod when `uid` is given), like `docker ps -a`.

        A full listing also refreshes the pod address table from the sandboxes' labels."""
        mark = self.ipam.mark()
        with _translate("listing containers", RuntimeUnavailable):
            summaries = self.api.containers(all=True, filters=self._filters(uid))
        if uid is None:
            self.ipam.load(self._addresses(summaries), since=mark)
        out: list[ObservedContainer] = []
        seen: set[str] = set()
        for s in summaries:
            cid, state = s["Id"], str(s.get("State") or "")
            seen.add(cid)
            with self._lock:
                hit = self._cache.get(cid)
            if hit is not None and hit[0] == state and state != "created":
                out.append(hit[1])
                continue
            try:
                with _translate(f"inspecting container {cid[:12]}"):
                    obs = observe(self.api.inspect_container(cid), self.network)
            except NotFound:
                continue  # removed in between
            with self._lock:
                self._cache[cid] = (obs.state, obs)
            out.append(obs)
        if uid is None:
            with self._lock:
                for cid in [c for c in self._cache if c not in seen]:
                    del self._cache[cid]
        return out

    def observe_pod(self, uid: str) -> ObservedPod:
        return ObservedPod.from_containers(uid, self.list_containers(uid))

    def observe_all(self) -> dict[str, ObservedPod]:
        groups: dict[str, list[ObservedContainer]] = {}
        for c in self.list_containers():
            groups.setdefault(c.pod_uid, []).append(c)
        return {uid: ObservedPod.from_containers(uid, items) for uid, items in groups.items()}

    # -- containers ---------------------------------------------------------------------

    def labels(self, pod: dict[str, Any], container: str, hash_: str, restart_count: int) -> dict[str, str]:
        meta = pod.get("metadata", {})
        out = {
            L_MANAGED: "true",
            L_UID: str(meta.get("uid", "")),
            L_POD: str(meta.get("name", "")),
            L_NS: str(meta.get("namespace", "")),
            L_CONTAINER: container,
            L_HASH: hash_,
            L_RESTARTS: str(restart_count),
        }
        if self.node_name:
            out[L_NODE] = self.node_name
        return out

    def _create(self, image: str, kwargs: dict[str, Any], uid: str) -> str:
        """Create a container; a leftover of the same pod holding the name is replaced."""
        for attempt in (0, 1):
            try:
                with _translate(f"creating container {kwargs['name']}", ContainerError, "CreateContainerError"):
                    try:
                        # containers.create() would inspect the new container before returning
                        # it; only its id is needed.
                        args = dict(kwargs, image=image, command=kwargs.get("command"), version=self.api._version)
                        created = self.api.create_container(**_create_container_args(args))
                    except docker.errors.APIError as e:
                        if e.status_code == 409 and attempt == 0 and self._remove_leftover(kwargs["name"], uid):
                            continue
                        raise
                    return str(created["Id"])
            except NotFound as e:
                raise ContainerError(e.message, "CreateContainerError") from None
        raise ContainerError(f"creating container {kwargs['name']}: name conflict", "CreateContainerError")

    def _remove_leftover(self, name: str, uid: str) -> bool:
        try:
            attrs = self.api.inspect_container(name)
        except docker.errors.APIError:
            return False
        if ((attrs.get("Config") or {}).get("Labels") or {}).get(L_UID) != uid:
            return False
        self.api.remove_container(attrs["Id"], force=True, v=True)
        return True

    def create_sandbox(self, pod: dict[str, Any], attempt: int, subnet: str | None = None, host_ip: str = "") -> str:
        """Create (not start) the pod's pause container with its pod IP chosen; returns its id.

        App containers can already be created against it; `start_sandbox` starts and
        attaches it. A `hostNetwork` pod's sandbox shares the host's network (and name); its
        pod IP is the node's, `host_ip`."""
        meta = pod.get("metadata", {})
        spec = pod.get("spec", {})
        host_network = bool(spec.get("hostNetwork"))
        if not host_network:
            self.ensure_network(subnet)
        if not self.image_exists(self.pause_image):
            raise ImageError(
                f"pause image {self.pause_image} is missing (it is built when the agent starts)",
                "CreateContainerError",
            )
        # /etc/hosts, shared by the pod's containers: the pod's own name (own network), then hostAliases
        aliases = [f"{h}:{alias.get('ip')}" for alias in spec.get("hostAliases") or []
                   for h in alias.get("hostnames") or []]
        kwargs: dict[str, Any] = {
            "name": container_name(meta["namespace"], meta["name"], SANDBOX_NAME, meta["uid"], attempt),
            "labels": self.labels(pod, SANDBOX_NAME, "", attempt),
            "extra_hosts": aliases,
            "security_opt": list(SECURITY_OPT),
            "detach": True,
            **self.dns_kwargs(pod),
        }
        if host_network:
            kwargs["labels"] |= {L_HOST_NETWORK: "true", **({L_POD_IP: host_ip} if host_ip else {})}
            kwargs["network_mode"] = "host"
            return self._create(self.pause_image, kwargs, meta["uid"])
        bridge = self._bridge
        if bridge is None:
            raise RuntimeFailure(f"pod network {self.network} has no subnet", "CreateContainerError")
        if not self.ipam.loaded:
            self.list_containers()
        hostname = str(spec.get("hostname") or meta["name"])[:63]
        try:
            ip = self.ipam.allocate(bridge.subnet, reserved=[bridge.gateway])
        except podnet.AttachError as e:
            raise RuntimeFailure(str(e), "CreateContainerError") from None
        kwargs["labels"][L_POD_IP] = ip
        kwargs |= {"hostname": hostname, "network_mode": "none", "extra_hosts": [f"{hostname}:{ip}", *aliases]}
        try:
            cid = self._create(self.pause_image, kwargs, meta["uid"])
        except RuntimeFailure:
            self.ipam.release(ip)
            raise
        self.ipam.bind(ip, cid)
        return cid

    def start_sandbox(self, sandbox_id: str) -> None:
        """Start a sandbox made by `create_sandbox` and plug it into the pod bridge
        (agent.podnet); on failure the sandbox is removed and its address freed."""
        try:
            self.start(sandbox_id)
            with _translate(f"inspecting container {sandbox_id[:12]}"):
                attrs = self.api.inspect_container(sandbox_id)
            obs = observe(attrs, self.network)
            pid = int((attrs.get("State") or {}).get("Pid") or 0)
            if pid <= 0 or not obs.running:
                raise RuntimeFailure(f"sandbox {sandbox_id[:12]} exited right after its start", "CreateContainerError")
            if self._linked_here((attrs.get("Config") or {}).get("Labels") or {}):
                bridge = self._bridge
                if bridge is None:
                    raise RuntimeFailure(f"sandbox {sandbox_id[:12]} has no pod network", "CreateContainerError")
                try:
                    podnet.attach(sandbox_id, pid, obs.ip, bridge)
                except podnet.AttachError as e:
                    where = f"{obs.pod_namespace}/{obs.pod_name}"
                    raise RuntimeFailure(f"attaching pod {where} to {bridge.name}: {e}", "CreateContainerError") from None
            with self._lock:
                self._cache[sandbox_id] = (obs.state, obs)
        except RuntimeFailure:
            with self._lock:
                self._network_id = None  # re-check the network next time (it may have been removed)
            with contextlib.suppress(RuntimeFailure):
                self.remove(sandbox_id)
            raise

    def check_sandboxes(self) -> list[str]:
        """Stop running sandboxes whose veth is missing (their agent died between start and
        attach, or someone deleted the link): their pods then get a new sandbox. Returns
        the ids stopped."""
        with _translate("listing containers", RuntimeUnavailable):
            summaries = self.api.containers(filters=self._filters())
        ours = [str(s["Id"]) for s in summaries if self._linked_here(s.get("Labels") or {})]
        if not ours:
            return []
        links = podnet.attached_links()
        stopped = []
        for cid in ours:
            if podnet.host_ifname(cid) not in links:
                log.warning("sandbox %s has no pod network link; stopping it so its pod gets a new one", cid[:12])
                self.stop(cid, 0)
                stopped.append(cid)
        return stopped

    def create_container(
        self,
        pod: dict[str, Any],
        spec: dict[str, Any],
        sandbox_id: str,
        restart_count: int,
        options: ContainerOptions | None = None,
    ) -> str:
        """Pull per policy and create (not start) one app/init container; returns its id."""
        image = str(spec.get("image") or "")
        if not image:
            raise ContainerError(f"container {spec.get('name')!r} has no image", "CreateContainerError")
        self.ensure_image(image, pull_policy(spec))
        if (spec.get("securityContext") or {}).get("runAsNonRoot") or (
            (pod.get("spec") or {}).get("securityContext") or {}
        ).get("runAsNonRoot"):
            with _translate(f"inspecting image {image}"):
                image_user = str((self.api.inspect_image(image).get("Config") or {}).get("User") or "")
            why = run_as_non_root_error(pod, spec, image_user)
            if why:
                raise ContainerError(why, "CreateContainerConfigError")
        labels = self.labels(pod, spec["name"], container_hash(spec), restart_count)
        try:
            kwargs = container_kwargs(pod, spec, sandbox_id, restart_count, labels, options)
        except (ValueError, KeyError) as e:
            raise ContainerError(f"invalid container spec: {e}", "CreateContainerError") from None
        return self._create(image, kwargs, pod["metadata"]["uid"])

    def start(self, container_id: str) -> None:
        with _translate(f"starting container {container_id[:12]}", ContainerError, "RunContainerError"):
            self.api.start(container_id)

    def stop(self, container_id: str, grace: int) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; a missing container is fine."""
        with contextlib.suppress(NotFound), _translate(f"stopping container {container_id[:12]}"):
            self.api.stop(container_id, timeout=max(0, int(grace)))

    def remove(self, container_id: str) -> None:
        with contextlib.suppress(NotFound), _translate(f"removing container {container_id[:12]}"):
            self.api.remove_container(container_id, force=True, v=True)
        with self._lock:
            self._cache.pop(container_id, None)
        self.ipam.release(container_id=container_id)

    def container_ip(self, container_id: str) -> str:
        """The container's address on the pod network ("" when it has none)."""
        with _translate(f"inspecting container {container_id[:12]}"):
            attrs = self.api.inspect_container(container_id)
        return observe(attrs, self.network).ip

    def exec_probe(self, container_id: str, cmd: list[str], timeout: float) -> tuple[int, bytes]:
        """Run `cmd` in the container (docker exec); (exit code, output). -1 on timeout.

        The engine has no exec timeout: on timeout the command is left to finish on its own
        and the probe counts as failed.
        """
        with _translate(f"exec in container {container_id[:12]}"):
            exec_id = self.api.exec_create(container_id, cmd, stdout=True, stderr=True)["Id"]
        future = _EXEC_POOL.submit(self._exec_wait, exec_id)
        try:
            return future.result(timeout=max(0.1, timeout))
        except FutureTimeout:
            return -1, f"command timed out after {timeout}s".encode()

    def _exec_wait(self, exec_id: str) -> tuple[int, bytes]:
        with _translate("exec"):
            out = self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id).get("ExitCode")
        return (int(code) if code is not None else -1), bytes(out or b"")

    def logs(self, container_id: str, tail: int | str = "all") -> str:
        with _translate(f"logs of container {container_id[:12]}"):
            return self.api.logs(container_id, tail=tail).decode(errors="replace")

    # -- logs, exec and stats for the agent's HTTP endpoint and metrics -------------------

    def find_container(
        self, namespace: str, pod: str, container: str, uid: str | None = None, previous: bool = False
    ) -> str:
        """Id of the newest attempt of a pod's container (the one before it with `previous`).

        Attempts are ordered by their restart-count label, then creation time. Raises
        `NotFound` with a kubelet-like message when there is no such attempt.
        """
        labels = [f"{L_MANAGED}=true", f"{L_NS}={namespace}", f"{L_POD}={pod}", f"{L_CONTAINER}={container}"]
        if self.node_name:
            labels.append(f"{L_NODE}={self.node_name}")
        if uid:
            labels.append(f"{L_UID}={uid}")
        with _translate(f"looking up container {container} of pod {namespace}/{pod}", RuntimeUnavailable):
            found = self.api.containers(all=True, filters={"label": labels})

        def order(s: dict[str, Any]) -> tuple[int, int]:
            try:
                restarts = int((s.get("Labels") or {}).get(L_RESTARTS, "0"))
            except ValueError:
                restarts = 0
            return restarts, int(s.get("Created") or 0)

        found.sort(key=order, reverse=True)
        index = 1 if previous else 0
        if len(found) <= index:
            if previous:
                raise NotFound(f'previous terminated container "{container}" in pod "{pod}" not found')
            raise NotFound(f'container "{container}" in pod "{pod}" is not available')
        return str(found[index]["Id"])

    def log_stream(
        self, container_id: str, follow: bool = False, tail: int | None = None, timestamps: bool = False
    ) -> Any:
        """A container's output as an iterator of byte chunks (stdout and stderr merged).

        The result has `close()`, callable from another thread, which ends a `follow`
        stream at once (used when the reader goes away).
        """
        with _translate(f"logs of container {container_id[:12]}"):
            return self.api.logs(
                container_id,
                stream=True,
                follow=follow,
                tail="all" if tail is None else max(0, int(tail)),
                timestamps=timestamps,
            )

    def exec_start(
        self, container_id: str, cmd: list[str], stdin: bool = False, tty: bool = False
    ) -> tuple[str, Any]:
        """Start `cmd` in a running container; returns (exec id, attached socket).

        The socket is the engine's hijacked connection: stdin is written to it and, without
        a tty, output arrives multiplexed (8-byte header: stream 1/2, big-endian length).
        Its underlying `socket.socket` is at `._sock` for the Unix-socket transport.
        """
        with _translate(f"exec in container {container_id[:12]}", ContainerError, "ExecError"):
            info = self.api.exec_create(container_id, cmd, stdout=True, stderr=True, stdin=stdin, tty=tty)
            exec_id = str(info["Id"])
            sock = self.api.exec_start(exec_id, tty=tty, socket=True)
        return exec_id, sock

    def exec_exit_code(self, exec_id: str) -> int | None:
        """The exit code of a finished exec, None while it still runs."""
        with _translate(f"inspecting exec {exec_id[:12]}"):
            info = self.api.exec_inspect(exec_id)
        if info.get("Running"):
            return None
        code = info.get("ExitCode")
        return int(code) if code is not None else None

    def exec_resize(self, exec_id: str, width: int, height: int) -> None:
        with contextlib.suppress(RuntimeFailure), _translate(f"resizing exec {exec_id[:12]}"):
            self.api.exec_resize(exec_id, height=height, width=width)

    def stats(self, container_id: str) -> dict[str, Any]:
        """One-shot resource usage of a container.

        `cpu_seconds` is cumulative CPU time; `memory_working_set_bytes` is usage minus
        inactive file cache (cAdvisor's definition; cgroup v1 `total_inactive_file`, v2
        `inactive_file`).
        """
        with _translate(f"stats of container {container_id[:12]}"):
            try:
                raw = self.api.stats(container_id, stream=False, one_shot=True)
            except docker.errors.InvalidVersion:
                raw = self.api.stats(container_id, stream=False)
        cpu = ((raw.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0
        mem = raw.get("memory_stats") or {}
        usage = int(mem.get("usage") or 0)
        extra = mem.get("stats") or {}
        inactive = int(extra.get("total_inactive_file", extra.get("inactive_file", 0)) or 0)
        return {
            "cpu_seconds": float(cpu) / 1e9,
            "memory_usage_bytes": usage,
            "memory_working_set_bytes": max(0, usage - inactive) if usage else 0,
            "memory_limit_bytes": int(mem.get("limit") or 0),
        }
