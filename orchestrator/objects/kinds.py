"""The kinds Dockyard serves, and how they map to API paths and store keys.

One table (`KINDS`) is the source of truth for the API router, discovery, the CLI's
name resolution (`po`, `deploy`, …) and the store key layout
(`/registry/{group}/{resource}/{namespace}/{name}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str
    kind: str
    resource: str  # plural, as in the URL path
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = field(default="")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    def key(self, namespace: str | None, name: str) -> str:
        return f"{self.prefix(namespace)}{name}"

    def prefix(self, namespace: str | None = None) -> str:
        """Store prefix of all objects of this kind (in one namespace if given)."""
        base = f"/registry/{self.group or 'core'}/{self.resource}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def base_path(self, namespace: str | None = None) -> str:
        """URL path of the collection."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.resource}"
        return f"{root}/{self.resource}"


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", False, ("ns",), ("status",)),
    Kind("", "v1", "Node", "nodes", False, ("no",), ("status",)),
    Kind("", "v1", "Pod", "pods", True, ("po",), ("status", "binding", "log", "exec")),
    Kind("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Kind("", "v1", "Secret", "secrets", True),
    Kind("", "v1", "Event", "events", True, ("ev",)),
    Kind("", "v1", "Service", "services", True, ("svc",), ("status",)),
    Kind("", "v1", "Endpoints", "endpoints", True, ("ep",), (), "endpoints"),
    Kind("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale")),
    Kind("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale")),
    Kind("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), ("status",)),
    Kind("coordination.k8s.io", "v1", "Lease", "leases", True),
)

_BY_RESOURCE = {(k.group, k.version, k.resource): k for k in KINDS}
_BY_KIND = {(k.api_version, k.kind): k for k in KINDS}


class UnknownKind(LookupError):
    """No served kind matches."""


def by_resource(group: str, version: str, resource: str) -> Kind:
    try:
        return _BY_RESOURCE[(group, version, resource)]
    except KeyError:
        raise UnknownKind(f"the server could not find the requested resource {resource!r}") from None


def by_kind(api_version: str, kind: str) -> Kind:
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        served = ", ".join(sorted({k.kind for k in KINDS}))
        raise UnknownKind(
            f'no kind "{kind}" is registered for version "{api_version}" (served kinds: {served})'
        ) from None


def resolve(name: str) -> Kind:
    """Resolve what a user types (`po`, `pod`, `pods`, `Pod`, `deployments.apps`) to a Kind."""
    n = name.lower()
    group = None
    if "." in n:
        n, group = n.split(".", 1)
    for k in KINDS:
        if group is not None and k.group != group:
            continue
        if n in (k.resource, k.singular_name, k.kind.lower()) or n in k.short_names:
            return k
    raise UnknownKind(f'the server doesn\'t have a resource type "{name}"')
