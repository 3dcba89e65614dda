"""Server-side defaults, applied in place before validation (as the API server does on create).

Each kind has one defaulting function registered in `_DEFAULTERS`; `apply_defaults(kind, obj)`
dispatches on it and does nothing for kinds without defaults, so adding a kind is adding one
function. Pod specs are defaulted by `pod_spec_defaults`, which `pod_template_spec_defaults`
reuses for ReplicaSet and Deployment templates, so a controller-created pod and a template
compare equal after defaulting.

The values are those of Kubernetes (pkg/apis/core/v1/defaults.go and apps/v1), e.g.
`restartPolicy: Always`, `terminationGracePeriodSeconds: 30`, probe `periodSeconds: 10`,
and `imagePullPolicy: Always` only for `:latest` or untagged images. Defaulting never fills
in a missing workload `selector`: apps/v1 requires one, so validation reports it instead.
Values of the wrong type are left alone for validation to report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

DEFAULT_SCHEDULER_NAME = "default-scheduler"
DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30
DEFAULT_VOLUME_MODE = 0o644  # 420, as configMap/secret/projected volumes default it

_PROBE_DEFAULTS: dict[str, int] = {
    "initialDelaySeconds": 0,
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    """parent[key] as a dict, created when absent; None when it holds a non-dict."""
    value = parent.get(key)
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list field (tolerates absent and malformed values)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def _setdefault(obj: dict[str, Any], key: str, value: Any) -> None:
    if obj.get(key) is None:
        obj[key] = value


def image_tag(image: str) -> str:
    """The tag of an image reference: "latest" when absent, "" when pinned by digest only."""
    if "@" in image:
        name = image.split("@", 1)[0]
        last = name.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else ""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def default_image_pull_policy(image: str) -> str:
    return "Always" if image_tag(image or "") == "latest" else "IfNotPresent"


def _http_get_defaults(handler: dict[str, Any]) -> None:
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        _setdefault(http_get, "path", "/")
        _setdefault(http_get, "scheme", "HTTP")


def probe_defaults(probe: dict[str, Any]) -> None:
    for key, value in _PROBE_DEFAULTS.items():
        _setdefault(probe, key, value)
    _http_get_defaults(probe)


def container_defaults(container: dict[str, Any]) -> None:
    image = container.get("image")
    if container.get("imagePullPolicy") is None:
        container["imagePullPolicy"] = default_image_pull_policy(image if isinstance(image, str) else "")
    _setdefault(container, "terminationMessagePath", "/dev/termination-log")
    _setdefault(container, "terminationMessagePolicy", "File")
    for port in _dicts(container.get("ports")):
        _setdefault(port, "protocol", "TCP")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(name)
        if isinstance(probe, dict):
            probe_defaults(probe)
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _http_get_defaults(lifecycle[hook])
    resources = _dict(container, "resources")
    if resources is not None:
        # A limit without a request requests the limit (what the scheduler then reserves).
        limits = resources.get("limits")
        if isinstance(limits, dict) and limits:
            requests = _dict(resources, "requests")
            if requests is not None:
                for name, quantity in limits.items():
                    requests.setdefault(name, quantity)


def _volume_defaults(volume: dict[str, Any]) -> None:
    for source in ("configMap", "secret", "projected", "downwardAPI"):
        src = volume.get(source)
        if isinstance(src, dict):
            _setdefault(src, "defaultMode", DEFAULT_VOLUME_MODE)
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict):
        _setdefault(host_path, "type", "")


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    """Kubernetes PodSpec defaults, in place."""
    _setdefault(spec, "restartPolicy", "Always")
    _setdefault(spec, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
    _setdefault(spec, "dnsPolicy", "ClusterFirst")
    _setdefault(spec, "schedulerName", DEFAULT_SCHEDULER_NAME)
    _setdefault(spec, "securityContext", {})
    _setdefault(spec, "enableServiceLinks", True)
    for container in _dicts(spec.get("initContainers")) + _dicts(spec.get("containers")):
        container_defaults(container)
    for volume in _dicts(spec.get("volumes")):
        _volume_defaults(volume)
    if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]


def pod_template_spec_defaults(template: dict[str, Any]) -> None:
    """Defaults of a PodTemplateSpec (`{metadata, spec}`) as used by ReplicaSet and Deployment."""
    spec = _dict(template, "spec")
    if spec is not None:
        pod_spec_defaults(spec)


def qos_class(spec: dict[str, Any]) -> str:
    """The pod's QoS class (Guaranteed, Burstable or BestEffort) from its containers' resources.

    Guaranteed requires every container to have cpu and memory limits equal to its requests
    (after request-from-limit defaulting); quantities are compared by value ("1" == "1000m").
    """
    from .validation import parse_quantity  # validation does not import this module back

    def same(a: Any, b: Any) -> bool:
        try:
            return parse_quantity(a) == parse_quantity(b)
        except ValueError:
            return str(a) == str(b)

    containers = _dicts(spec.get("initContainers")) + _dicts(spec.get("containers"))
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
        requests = res.get("requests") if isinstance(res.get("requests"), dict) else {}
        limits = res.get("limits") if isinstance(res.get("limits"), dict) else {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or name not in requests or not same(requests[name], limits[name]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


def _pod(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is not None:
        pod_spec_defaults(spec)
    status = _dict(obj, "status")
    if status is not None:
        _setdefault(status, "phase", "Pending")
        if spec is not None:
            _setdefault(status, "qosClass", qos_class(spec))


def _replica_set(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _setdefault(spec, "replicas", 1)
    template = spec.get("template")
    if isinstance(template, dict):
        pod_template_spec_defaults(template)


def _deployment(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _setdefault(spec, "replicas", 1)
    _setdefault(spec, "revisionHistoryLimit", 10)
    _setdefault(spec, "progressDeadlineSeconds", 600)
    strategy = _dict(spec, "strategy")
    if strategy is not None:
        _setdefault(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _dict(strategy, "rollingUpdate")
            if rolling is not None:
                _setdefault(rolling, "maxUnavailable", "25%")
                _setdefault(rolling, "maxSurge", "25%")
    template = spec.get("template")
    if isinstance(template, dict):
        pod_template_spec_defaults(template)


def _namespace(obj: dict[str, Any]) -> None:
    status = _dict(obj, "status")
    if status is not None:
        _setdefault(status, "phase", "Active")


def _secret(obj: dict[str, Any]) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"


def _service(obj: dict[str, Any]) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _setdefault(spec, "type", "ClusterIP")
    _setdefault(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = _dict(spec, "sessionAffinityConfig")
        client_ip = _dict(config, "clientIP") if config is not None else None
        if client_ip is not None:
            _setdefault(client_ip, "timeoutSeconds", 10800)
    if spec["type"] in ("NodePort", "LoadBalancer"):
        _setdefault(spec, "externalTrafficPolicy", "Cluster")
    _setdefault(spec, "internalTrafficPolicy", "Cluster")
    for port in _dicts(spec.get("ports")):
        _setdefault(port, "protocol", "TCP")
        if port.get("targetPort") is None and port.get("port") is not None:
            port["targetPort"] = port["port"]


def _hpa_rules(behavior: dict[str, Any], direction: str, window: int, policies: list[dict[str, Any]]) -> None:
    scaling = _dict(behavior, direction)
    if scaling is None:
        return
    _setdefault(scaling, "stabilizationWindowSeconds", window)
    _setdefault(scaling, "selectPolicy", "Max")
    _setdefault(scaling, "policies", policies)


def _horizontal_pod_autoscaler(obj: dict[str, Any]) -> None:
    """autoscaling/v2 defaults: minReplicas 1, CPU at 80% when no metric is given, and when a
    `behavior` is given, its missing parts (scale up: no window, +4 pods or +100% per 15 s;
    scale down: 300 s window, -100% per 15 s; selectPolicy Max)."""
    spec = _dict(obj, "spec")
    if spec is None:
        return
    _setdefault(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        _hpa_rules(behavior, "scaleUp", 0, [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                            {"type": "Percent", "value": 100, "periodSeconds": 15}])
        _hpa_rules(behavior, "scaleDown", 300, [{"type": "Percent", "value": 100, "periodSeconds": 15}])


_DEFAULTERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Service": _service,
    "Pod": _pod,
    "ReplicaSet": _replica_set,
    "Deployment": _deployment,
    "Namespace": _namespace,
    "Secret": _secret,
    "HorizontalPodAutoscaler": _horizontal_pod_autoscaler,
}


def apply_defaults(kind: str, obj: dict[str, Any]) -> None:
    """Fill in Kubernetes defaults for `kind` in `obj`, in place. Idempotent."""
    defaulter = _DEFAULTERS.get(kind)
    if defaulter is not None and isinstance(obj, dict):
        defaulter(obj)
