"""Discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/{group}/{version}`) built from the kinds table.

Every served version of a kind is listed (`kinds.SERVED`: HorizontalPodAutoscalers in
autoscaling/v2 and autoscaling/v1); a group's preferred version is the first one the table
names, its stored version (autoscaling/v2, as in Kubernetes).

`metrics.k8s.io/v1beta1` is not in the kinds table (nothing is stored: `api.proxy` answers it
by scraping the agents) but is listed here too, read-only, so that clients such as
`kubectl top` find it the way they find metrics-server's API.
"""

from __future__ import annotations

from typing import Any

from ..objects.kinds import SERVED, Kind

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"
METRICS_RESOURCES: list[dict[str, Any]] = [
    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
    {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
]


def _resource(k: Kind) -> dict[str, Any]:
    r: dict[str, Any] = {
        "name": k.resource,
        "singularName": k.singular_name,
        "namespaced": k.namespaced,
        "kind": k.kind,
        "verbs": VERBS,
    }
    if k.short_names:
        r["shortNames"] = list(k.short_names)
    if k.categories:
        r["categories"] = list(k.categories)
    return r


def _subresources(k: Kind) -> list[dict[str, Any]]:
    out = []
    for sub in k.subresources:
        if sub == "status":
            out.append({"name": f"{k.resource}/status", "singularName": "", "namespaced": k.namespaced,
                        "kind": k.kind, "verbs": ["get", "patch", "update"]})
        elif sub == "scale":
            out.append({"name": f"{k.resource}/scale", "singularName": "", "namespaced": k.namespaced,
                        "group": "autoscaling", "version": "v1", "kind": "Scale",
                        "verbs": ["get", "patch", "update"]})
        elif sub == "finalize":
            out.append({"name": f"{k.resource}/finalize", "singularName": "", "namespaced": False,
                        "kind": k.kind, "verbs": ["update"]})
        elif sub == "eviction":
            out.append({"name": f"{k.resource}/eviction", "singularName": "", "namespaced": True,
                        "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]})
        elif sub == "binding":
            out.append({"name": f"{k.resource}/binding", "singularName": "", "namespaced": True,
                        "kind": "Binding", "verbs": ["create"]})
        elif sub in ("log", "exec"):
            out.append({"name": f"{k.resource}/{sub}", "singularName": "", "namespaced": True,
                        "kind": "Pod" if sub == "log" else "PodExecOptions",
                        "verbs": ["get"] if sub == "log" else ["create", "get"]})
    return out


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    if group == METRICS_GROUP and version == METRICS_VERSION:
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
                "resources": [dict(r) for r in METRICS_RESOURCES]}
    kinds = [k for k in SERVED if k.group == group and k.version == version]
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for k in kinds:
        resources.append(_resource(k))
        resources.extend(_subresources(k))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def api_group_list() -> dict[str, Any]:
    groups: dict[str, list[str]] = {}
    for k in SERVED:
        if k.group:
            versions = groups.setdefault(k.group, [])
            if k.version not in versions:
                versions.append(k.version)
    groups.setdefault(METRICS_GROUP, [METRICS_VERSION])
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": g,
                "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
            }
            for g, vs in groups.items()
        ],
    }
