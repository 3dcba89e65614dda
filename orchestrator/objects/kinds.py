"""The kinds Dockyard serves, and how they map to API paths, store keys and strategies.

One table (`KINDS`) is the source of truth for the API router, discovery, the CLI's
name resolution (`po`, `deploy`, …), the store key layout
(`/registry/{group}/{resource}/{namespace}/{name}`) and the registry's per-kind behaviour:
each row names its kind's `Strategy` (defaults, validation, status and deletion rules,
categories, printer columns, field schema), which lives in the kind's module under
`objects/resources/`. Readers take those through the row: `Kind.printer` (server-side Tables
and `dockyard get`), `Kind.schema` and `schema_for(kind name)` (strict field validation,
OpenAPI), `Kind.categories` (`get all`).

Adding a kind: write `objects/resources/<kind>.py` (its defaults, rules, `SCHEMA` (field
types), `PRINTER` (columns and cells) and a `Strategy` subclass naming them, exported as
`STRATEGY`; see `objects/strategy.py`) and add its row here, with the short names `kubectl`
knows it by. Nothing else dispatches on kind names. The order of the rows is the order
kinds are listed in (discovery, `get all`).

A kind also served in another version than the stored one (HorizontalPodAutoscalers in
autoscaling/v1 besides autoscaling/v2) has a row in `CONVERTED` carrying a `Conversion`;
`SERVED` is every row the API routes, discovers and documents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import Obj, hpaconversion
from .printers import Printer
from .resources import (
    configmap,
    deployment,
    endpoints,
    endpointslice,
    event,
    horizontalpodautoscaler,
    lease,
    namespace,
    node,
    pod,
    replicaset,
    secret,
    service,
)
from .schema import SCALE, Struct
from .strategy import GENERIC, Strategy


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
    strategy: Strategy = field(default=GENERIC, compare=False, repr=False)
    # set on the rows of CONVERTED: the kind is stored in another version (see Conversion)
    conversion: Conversion | None = field(default=None, compare=False, repr=False)

    @property
    def stored(self) -> Kind:
        """The row the registry reads and writes this kind's objects with (itself unless converted)."""
        return self.conversion.stored if self.conversion is not None else self

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
    def categories(self) -> tuple[str, ...]:
        """Discovery categories (`all`: listed by `kubectl get all`), from the strategy."""
        return self.strategy.categories

    @property
    def printer(self) -> Printer:
        """Columns and cells of the kind's tables (server-side Tables, `dockyard get`), from the strategy."""
        return self.strategy.printer

    @property
    def schema(self) -> Struct | None:
        """The kind's field types (the whole object), from the strategy."""
        return self.strategy.schema

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


@dataclass(frozen=True)
class Conversion:
    """How a kind served in a version other than the one it is stored in converts, as
    kube-apiserver serves every version of a resource from one stored object: `stored` is the
    kind's row in KINDS (the registry reads and writes only that version), `to_stored` turns
    a whole object of the served version into the stored version, `from_stored` the reverse.
    Both are pure and return new objects; the API converts request bodies with the one and
    every object it answers (gets, lists, watch events, Tables) with the other."""

    stored: Kind
    to_stored: Callable[[Obj], Obj]
    from_stored: Callable[[Obj], Obj]


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize"), strategy=namespace.STRATEGY),
    Kind("", "v1", "Node", "nodes", False, ("no",), ("status",), strategy=node.STRATEGY),
    Kind("", "v1", "Pod", "pods", True, ("po",), ("status", "binding", "eviction", "log", "exec"),
         strategy=pod.STRATEGY),
    Kind("", "v1", "ConfigMap", "configmaps", True, ("cm",), strategy=configmap.STRATEGY),
    Kind("", "v1", "Secret", "secrets", True, strategy=secret.STRATEGY),
    Kind("", "v1", "Event", "events", True, ("ev",), strategy=event.STRATEGY),
    Kind("", "v1", "Service", "services", True, ("svc",), ("status",), strategy=service.STRATEGY),
    Kind("", "v1", "Endpoints", "endpoints", True, ("ep",), (), "endpoints", strategy=endpoints.STRATEGY),
    Kind("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"),
         strategy=deployment.STRATEGY),
    Kind("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), strategy=replicaset.STRATEGY),
    Kind("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), ("status",),
         strategy=horizontalpodautoscaler.STRATEGY),
    Kind("coordination.k8s.io", "v1", "Lease", "leases", True, strategy=lease.STRATEGY),
    Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, strategy=endpointslice.STRATEGY),
)


def _row(api_version: str, kind: str) -> Kind:
    return next(k for k in KINDS if (k.api_version, k.kind) == (api_version, kind))


# Kinds served in a further version, each converted to and from its row in KINDS (one stored
# object, as in Kubernetes). They are listed in discovery and OpenAPI after the rows of KINDS
# (so a group's first version stays its preferred one) and found by path and by apiVersion;
# everything that walks the stored kinds (controllers, `get all`, the garbage collector)
# walks KINDS only. Adding one: its version's schema and printer as a strategy in the kind's
# module, pure conversion functions, and its row here.
CONVERTED: tuple[Kind, ...] = (
    Kind("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), ("status",),
         strategy=horizontalpodautoscaler.V1_STRATEGY,
         conversion=Conversion(_row("autoscaling/v2", "HorizontalPodAutoscaler"), hpaconversion.v1_to_v2,
                               hpaconversion.v2_to_v1)),
)

# every kind the API serves, in every version it serves it
SERVED: tuple[Kind, ...] = KINDS + CONVERTED

_BY_RESOURCE = {(k.group, k.version, k.resource): k for k in SERVED}
_BY_KIND = {(k.api_version, k.kind): k for k in SERVED}


_STRATEGY_BY_KIND = {k.kind: k.strategy for k in KINDS}

# Schemas by kind name: every row's, and the bodies of subresources that are not stored kinds.
_SCHEMA_BY_KIND: dict[str, Struct] = {
    **{k.kind: k.schema for k in KINDS if k.schema is not None},
    "Scale": SCALE,  # autoscaling/v1, the `scale` subresource of ReplicaSets and Deployments
}


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


def strategy_for(kind: str) -> Strategy:
    """The strategy of a kind by name; the generic one for a name outside the table."""
    return _STRATEGY_BY_KIND.get(kind, GENERIC)


def schema_for(kind: str) -> Struct | None:
    """The field types of a kind (or subresource body, `Scale`) by name; None for an unknown name."""
    return _SCHEMA_BY_KIND.get(kind)


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
