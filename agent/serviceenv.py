"""Service environment variables of a container, the way kubelet makes them.

Kubelet gives every container Docker-link-style variables for Services
(``getServiceEnvVarMap`` and ``envvars.FromServices``); so does the agent:

* Which Services: ``default/kubernetes`` (the in-cluster API) always, and, when the pod's
  ``enableServiceLinks`` is not false (the default is true), every Service of the pod's
  namespace. A Service of the pod's namespace named ``kubernetes`` wins over the one in
  ``default``. Services without a cluster IP (headless ``None``, ExternalName) give none.
* For a Service ``my-svc`` (name upper-cased, ``-`` → ``_``: ``MY_SVC``) with cluster IP
  ``IP`` and ports ``p0, p1, …``:
  ``MY_SVC_SERVICE_HOST=IP``, ``MY_SVC_SERVICE_PORT=<p0>``, for every named port
  ``MY_SVC_SERVICE_PORT_<NAME>=<port>``, ``MY_SVC_PORT=<proto>://IP:<p0>``, and for every
  port ``MY_SVC_PORT_<port>_<PROTO>=<proto>://IP:<port>`` with ``…_PROTO=<proto>``,
  ``…_PORT=<port>`` and ``…_ADDR=IP`` (protocol lower-case in values, upper-case in names,
  TCP when unset; an IPv6 address in brackets inside ``IP:port``).
* The user's variables win: a name the container sets itself (``env``/``envFrom``) keeps
  its value (``with_service_env``).

The variables are computed when a container is created, from the Services the agent's
watch-fed cache holds then, and go into the container's environment only: the container's
spec hash (``agent.pods.container_hash``, the label that decides "replace the container")
covers the pod spec alone, so a Service created, changed or deleted later, or an agent
restart, never restarts a running container, as in Kubernetes. Pure functions, table-tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MASTER_NAMESPACE = "default"
MASTER_SERVICES = ("kubernetes",)


def env_name(name: str) -> str:
    """A Service or port name as a variable name part: upper case, dashes to underscores."""
    return name.replace("-", "_").upper()


def has_cluster_ip(svc: Mapping[str, Any]) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def service_variables(svc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The variables of one Service, in kubelet's order (none without a cluster IP)."""
    if not has_cluster_ip(svc):
        return []
    spec = svc.get("spec") or {}
    ip = str(spec["clusterIP"])
    prefix = env_name(str((svc.get("metadata") or {}).get("name") or ""))
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("port") is not None]
    out = [(f"{prefix}_SERVICE_HOST", ip)]
    if not ports:
        return out
    out.append((f"{prefix}_SERVICE_PORT", str(int(ports[0]["port"]))))
    for p in ports:
        if p.get("name"):
            out.append((f"{prefix}_SERVICE_PORT_{env_name(str(p['name']))}", str(int(p["port"]))))
    for i, p in enumerate(ports):
        port = int(p["port"])
        proto = str(p.get("protocol") or "TCP")
        url = f"{proto.lower()}://{_host_port(ip, port)}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        base = f"{prefix}_PORT_{port}_{proto.upper()}"
        out += [(base, url), (f"{base}_PROTO", proto.lower()), (f"{base}_PORT", str(port)), (f"{base}_ADDR", ip)]
    return out


def linked_services(services: Iterable[Mapping[str, Any]], namespace: str,
                    enable_service_links: bool) -> list[Mapping[str, Any]]:
    """The Services whose variables a pod of `namespace` gets, ordered by name."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        if not has_cluster_ip(svc):
            continue
        meta = svc.get("metadata") or {}
        name, ns = str(meta.get("name") or ""), str(meta.get("namespace") or "")
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc  # the pod's own namespace wins over the master Service
    return [chosen[k] for k in sorted(chosen)]


def service_env(services: Iterable[Mapping[str, Any]], pod: Mapping[str, Any]) -> dict[str, str]:
    """The Service variables of a pod's containers."""
    meta = pod.get("metadata") or {}
    links = (pod.get("spec") or {}).get("enableServiceLinks")
    namespace = str(meta.get("namespace") or "default")
    out: dict[str, str] = {}
    for svc in linked_services(services, namespace, links is not False):
        out.update(service_variables(svc))
    return out


def with_service_env(env: list[tuple[str, str]], services: Mapping[str, str]) -> list[tuple[str, str]]:
    """The container's own variables, then the Service variables it does not set itself."""
    own = {name for name, _ in env}
    return [*env, *((k, v) for k, v in services.items() if k not in own)]

