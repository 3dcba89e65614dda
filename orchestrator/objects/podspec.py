"""PodSpec and PodTemplateSpec: the defaults and rules shared by Pods and by the pod templates
of ReplicaSets and Deployments (and of any workload kind to come).

Defaults: `pod_spec_defaults` (restartPolicy, grace period, DNS policy, scheduler, container
pull policy, probe timings, volume modes, requests from limits), `pod_template_spec_defaults`
for a template's `spec`, and `qos_class`. Validation: `validate_pod_spec` (containers, ports,
env, resources, volumes and mounts, probes and lifecycle hooks, tolerations, security
contexts) and `validate_workload` (selector, template labels, template spec, the
restartPolicy and activeDeadlineSeconds a workload template may have, non-negative counts).
The values and messages are those of Kubernetes (pkg/apis/core/v1/defaults.go,
pkg/apis/core/validation, pkg/apis/apps/validation).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from . import schema
from .fielderrors import (
    FieldError,
    at,
    duplicate,
    enum,
    forbidden,
    invalid,
    nonnegative,
    not_found,
    not_supported,
    positive,
    required,
)
from .jsonfields import child, dict_items, dict_of, dicts_of, list_of, set_default
from .names import config_key_error, dns1123_label_error, dns1123_subdomain_error, port_name_error
from .objectmeta import validate_labels
from .quantity import parse_quantity
from .selectors import SelectorError, label_key_error, label_value_error, selector_from_spec

MAX_INT32 = schema.INT32_RANGE[1]
_ENV_VAR_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

# --- defaults ---------------------------------------------------------------------------------

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
        set_default(http_get, "path", "/")
        set_default(http_get, "scheme", "HTTP")


def probe_defaults(probe: dict[str, Any]) -> None:
    for key, value in _PROBE_DEFAULTS.items():
        set_default(probe, key, value)
    _http_get_defaults(probe)


def container_defaults(container: dict[str, Any]) -> None:
    image = container.get("image")
    if container.get("imagePullPolicy") is None:
        container["imagePullPolicy"] = default_image_pull_policy(image if isinstance(image, str) else "")
    set_default(container, "terminationMessagePath", "/dev/termination-log")
    set_default(container, "terminationMessagePolicy", "File")
    for port in dict_items(container.get("ports")):
        set_default(port, "protocol", "TCP")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(name)
        if isinstance(probe, dict):
            probe_defaults(probe)
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _http_get_defaults(lifecycle[hook])
    resources = child(container, "resources")
    if resources is not None:
        # A limit without a request requests the limit (what the scheduler then reserves).
        limits = resources.get("limits")
        if isinstance(limits, dict) and limits:
            requests = child(resources, "requests")
            if requests is not None:
                for name, quantity in limits.items():
                    requests.setdefault(name, quantity)


def _volume_defaults(volume: dict[str, Any]) -> None:
    for source in ("configMap", "secret", "projected", "downwardAPI"):
        src = volume.get(source)
        if isinstance(src, dict):
            set_default(src, "defaultMode", DEFAULT_VOLUME_MODE)
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict):
        set_default(host_path, "type", "")


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    """Kubernetes PodSpec defaults, in place."""
    set_default(spec, "restartPolicy", "Always")
    set_default(spec, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS)
    set_default(spec, "dnsPolicy", "ClusterFirst")
    set_default(spec, "schedulerName", DEFAULT_SCHEDULER_NAME)
    set_default(spec, "securityContext", {})
    set_default(spec, "enableServiceLinks", True)
    for container in dict_items(spec.get("initContainers")) + dict_items(spec.get("containers")):
        container_defaults(container)
    for volume in dict_items(spec.get("volumes")):
        _volume_defaults(volume)
    if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]


def pod_template_spec_defaults(template: dict[str, Any]) -> None:
    """Defaults of a PodTemplateSpec (`{metadata, spec}`) as used by ReplicaSet and Deployment."""
    spec = child(template, "spec")
    if spec is not None:
        pod_spec_defaults(spec)


def qos_class(spec: dict[str, Any]) -> str:
    """The pod's QoS class (Guaranteed, Burstable or BestEffort) from its containers' resources.

    Guaranteed requires every container to have cpu and memory limits equal to its requests
    (after request-from-limit defaulting); quantities are compared by value ("1" == "1000m").
    """
    def same(a: Any, b: Any) -> bool:
        try:
            return parse_quantity(a) == parse_quantity(b)
        except ValueError:
            return str(a) == str(b)

    containers = dict_items(spec.get("initContainers")) + dict_items(spec.get("containers"))
    any_set = False
    guaranteed = True
    for c in containers:
        res = dict_of(c.get("resources"))
        requests = dict_of(res.get("requests"))
        limits = dict_of(res.get("limits"))
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or name not in requests or not same(requests[name], limits[name]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


# --- validation -------------------------------------------------------------------------------

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_FIELD_REF_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
_RESOURCE_FIELD_REFS = tuple(
    f"{kind}.{res}" for kind in ("limits", "requests") for res in ("cpu", "memory", "ephemeral-storage")
)


def _id_range(errs: list[FieldError], obj: dict[str, Any], name: str, path: str) -> None:
    """A user or group id: 0 to MaxInt32 (IsValidUserID / IsValidGroupID)."""
    value = obj.get(name)
    if value is not None and not 0 <= value <= MAX_INT32:
        errs.append(invalid(at(path, name), value, f"must be between 0 and {MAX_INT32}, inclusive"))


def validate_port_ref(port: Any, path: str) -> list[FieldError]:
    if port is None or port == "":
        return [required(path)]
    if isinstance(port, str):
        err = port_name_error(port)
        return [invalid(path, port, err)] if err else []
    if not 1 <= port <= 65535:
        return [invalid(path, port, "must be between 1 and 65535, inclusive")]
    return []


def _validate_handler(handler: dict[str, Any], path: str, kinds: tuple[str, ...]) -> list[FieldError]:
    errs: list[FieldError] = []
    present = [k for k in kinds if handler.get(k) is not None]
    if not present:
        return [required(path, "must specify a handler type")]
    if len(present) > 1:
        errs.append(forbidden(f"{path}.{present[1]}", "may not specify more than 1 handler type"))
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        errs += validate_port_ref(http_get.get("port"), f"{path}.httpGet.port")
        enum(errs, http_get, "scheme", f"{path}.httpGet", ("HTTP", "HTTPS"))
    tcp = handler.get("tcpSocket")
    if isinstance(tcp, dict):
        errs += validate_port_ref(tcp.get("port"), f"{path}.tcpSocket.port")
    grpc = handler.get("grpc")
    if isinstance(grpc, dict):
        errs += validate_port_ref(grpc.get("port"), f"{path}.grpc.port")
    exec_ = handler.get("exec")
    if isinstance(exec_, dict) and not exec_.get("command"):
        errs.append(required(f"{path}.exec.command"))
    sleep = handler.get("sleep")
    if isinstance(sleep, dict):
        seconds = sleep.get("seconds")
        if seconds is None:
            errs.append(required(f"{path}.sleep.seconds"))
        elif seconds < 0:
            errs.append(invalid(f"{path}.sleep.seconds", seconds, "must be non-negative"))
    return errs


def _validate_probe(probe: dict[str, Any], path: str, which: str) -> list[FieldError]:
    errs = _validate_handler(probe, path, ("exec", "httpGet", "tcpSocket", "grpc"))
    nonnegative(errs, probe, "initialDelaySeconds", path)
    for fld in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
                "terminationGracePeriodSeconds"):
        positive(errs, probe, fld, path)
    if which in ("livenessProbe", "startupProbe"):
        threshold = probe.get("successThreshold")
        if threshold is not None and threshold != 1:
            errs.append(invalid(f"{path}.successThreshold", threshold, "must be 1"))
    return errs


def _validate_resources(resources: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    parsed: dict[str, dict[str, Decimal]] = {"limits": {}, "requests": {}}
    for section in ("limits", "requests"):
        for name, quantity in dict_of(resources.get(section)).items():
            field = f"{path}.{section}[{name}]"
            if (
                "/" not in name
                and name not in _STANDARD_CONTAINER_RESOURCES
                and not name.startswith("hugepages-")
            ):
                errs.append(invalid(field, name, "must be a standard resource for containers"))
                continue
            if "/" in name:
                err = label_key_error(name)
                if err:
                    errs.append(invalid(field, name, err))
                    continue
            try:
                value = parse_quantity(quantity)
            except ValueError as exc:
                errs.append(invalid(field, quantity, str(exc)))
                continue
            if value < 0:
                errs.append(invalid(field, quantity, "must be greater than or equal to 0"))
                continue
            if "/" in name and value != value.to_integral_value():
                errs.append(invalid(field, quantity, "must be an integer"))
                continue
            parsed[section][name] = value
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            quantity = resources["requests"][name]
            shown = resources["limits"][name]
            errs.append(
                invalid(
                    f"{path}.requests", quantity, f"must be less than or equal to {name} limit of {shown}"
                )
            )
        if "/" in name and limit is not None and request != limit:
            errs.append(
                invalid(
                    f"{path}.requests[{name}]", resources["requests"][name], f"must be equal to {name} limit"
                )
            )
    return errs


def _validate_env(env: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(env):
        p = f"{path}[{i}]"
        name = var.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        elif not _ENV_VAR_RE.match(name):
            errs.append(
                invalid(
                    f"{p}.name",
                    name,
                    "a valid environment variable name must consist of alphabetic characters, digits, "
                    "'_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or "
                    "'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
                )
            )
        source = var.get("valueFrom")
        if source is None:
            continue
        if var.get("value"):
            errs.append(invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty"))
        present = [
            k for k in ("configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef") if source.get(k)
        ]
        if not present:
            errs.append(
                invalid(
                    f"{p}.valueFrom",
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                )
            )
            continue
        if len(present) > 1:
            errs.append(invalid(f"{p}.valueFrom", "", "may not have more than one field specified at a time"))
        for ref in ("configMapKeyRef", "secretKeyRef"):
            sel = dict_of(source.get(ref))
            if source.get(ref) is not None:
                if not sel.get("name"):
                    errs.append(required(f"{p}.valueFrom.{ref}.name"))
                if not sel.get("key"):
                    errs.append(required(f"{p}.valueFrom.{ref}.key"))
                elif config_key_error(sel["key"]):
                    errs.append(
                        invalid(f"{p}.valueFrom.{ref}.key", sel["key"], config_key_error(sel["key"]) or "")
                    )
        field_ref = source.get("fieldRef")
        if isinstance(field_ref, dict):
            fp = field_ref.get("fieldPath")
            if not fp:
                errs.append(required(f"{p}.valueFrom.fieldRef.fieldPath"))
            elif fp not in _FIELD_REF_PATHS and not re.match(
                r"^metadata\.(labels|annotations)\['[^']+'\]$", fp
            ):
                errs.append(not_supported(f"{p}.valueFrom.fieldRef.fieldPath", fp, _FIELD_REF_PATHS))
        res_ref = source.get("resourceFieldRef")
        if isinstance(res_ref, dict):
            res = res_ref.get("resource")
            if not res:
                errs.append(required(f"{p}.valueFrom.resourceFieldRef.resource"))
            elif res not in _RESOURCE_FIELD_REFS:
                errs.append(
                    not_supported(f"{p}.valueFrom.resourceFieldRef.resource", res, _RESOURCE_FIELD_REFS)
                )
    return errs


def _relative_path_errors(value: str, path: str) -> list[FieldError]:
    if value.startswith("/"):
        return [invalid(path, value, "must be a relative path")]
    if ".." in value.split("/"):
        return [invalid(path, value, "must not contain '..'")]
    return []


def _validate_container(c: dict[str, Any], path: str, volumes: set[str], init: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    name = c.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        err = dns1123_label_error(name)
        if err:
            errs.append(invalid(f"{path}.name", name, err))
    if not c.get("image"):
        errs.append(required(f"{path}.image"))
    elif c["image"] != c["image"].strip():
        errs.append(invalid(f"{path}.image", c["image"], "must not have leading or trailing whitespace"))
    enum(errs, c, "imagePullPolicy", path, PULL_POLICIES)
    enum(errs, c, "terminationMessagePolicy", path, TERMINATION_MESSAGE_POLICIES)
    if init:
        enum(errs, c, "restartPolicy", path, ("Always",))
    elif c.get("restartPolicy") is not None:
        errs.append(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))

    port_names: set[str] = set()
    for i, port in enumerate(dicts_of(c.get("ports"))):
        p = f"{path}.ports[{i}]"
        cp = port.get("containerPort")
        if cp is None or cp == 0:
            errs.append(required(f"{p}.containerPort"))
        elif not 1 <= cp <= 65535:
            errs.append(invalid(f"{p}.containerPort", cp, "must be between 1 and 65535, inclusive"))
        hp = port.get("hostPort")
        if hp and not 1 <= hp <= 65535:
            errs.append(invalid(f"{p}.hostPort", hp, "must be between 1 and 65535, inclusive"))
        enum(errs, port, "protocol", p, PROTOCOLS)
        pname = port.get("name")
        if pname:
            err = port_name_error(pname)
            if err:
                errs.append(invalid(f"{p}.name", pname, err))
            elif pname in port_names:
                errs.append(duplicate(f"{p}.name", pname))
            port_names.add(pname)

    errs += _validate_env(dicts_of(c.get("env")), f"{path}.env")
    for i, src in enumerate(dicts_of(c.get("envFrom"))):
        p = f"{path}.envFrom[{i}]"
        refs = [k for k in ("configMapRef", "secretRef") if src.get(k) is not None]
        if len(refs) != 1:
            errs.append(invalid(p, "", "must specify exactly one of: `configMapRef` or `secretRef`"))
        for ref in refs:
            if not dict_of(src.get(ref)).get("name"):
                errs.append(required(f"{p}.{ref}.name"))
        prefix = src.get("prefix")
        if prefix and not _ENV_VAR_RE.match(prefix):
            errs.append(invalid(f"{p}.prefix", prefix, "must be a valid environment variable name prefix"))

    errs += _validate_resources(dict_of(c.get("resources")), f"{path}.resources")

    mount_paths: set[str] = set()
    for i, mount in enumerate(dicts_of(c.get("volumeMounts"))):
        p = f"{path}.volumeMounts[{i}]"
        vname = mount.get("name")
        if not vname:
            errs.append(required(f"{p}.name"))
        elif vname not in volumes:
            errs.append(not_found(f"{p}.name", vname))
        mp = mount.get("mountPath")
        if not mp:
            errs.append(required(f"{p}.mountPath"))
        elif mp in mount_paths:
            errs.append(invalid(f"{p}.mountPath", mp, "must be unique"))
        else:
            mount_paths.add(mp)
        if mount.get("subPath"):
            errs += _relative_path_errors(mount["subPath"], f"{p}.subPath")

    for which in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(which)
        if probe is None:
            continue
        if init and c.get("restartPolicy") != "Always":
            errs.append(
                forbidden(
                    f"{path}.{which}", "may not be set for init containers without restartPolicy=Always"
                )
            )
            continue
        errs += _validate_probe(probe, f"{path}.{which}", which)
    lifecycle = dict_of(c.get("lifecycle"))
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            errs += _validate_handler(
                lifecycle[hook], f"{path}.lifecycle.{hook}", ("exec", "httpGet", "tcpSocket", "sleep")
            )
    sc = dict_of(c.get("securityContext"))
    for fld in ("runAsUser", "runAsGroup"):
        _id_range(errs, sc, fld, f"{path}.securityContext")
    return errs


def _validate_volumes(volumes: list[dict[str, Any]], path: str) -> tuple[list[FieldError], set[str]]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, vol in enumerate(volumes):
        p = f"{path}[{i}]"
        name = vol.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        else:
            err = dns1123_label_error(name)
            if err:
                errs.append(invalid(f"{p}.name", name, err))
            elif name in names:
                errs.append(duplicate(f"{p}.name", name))
            names.add(name)
        sources = [s for s in schema.VOLUME_SOURCES if vol.get(s) is not None]
        if not sources:
            errs.append(required(p, "must specify a volume type"))
            continue
        if len(sources) > 1:
            errs.append(forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
        host_path = vol.get("hostPath")
        if isinstance(host_path, dict):
            hp = host_path.get("path")
            if not hp:
                errs.append(required(f"{p}.hostPath.path"))
            elif ".." in hp.split("/"):
                errs.append(invalid(f"{p}.hostPath.path", hp, "must not contain '..'"))
            enum(
                errs,
                host_path,
                "type",
                f"{p}.hostPath",
                (
                    "",
                    "DirectoryOrCreate",
                    "Directory",
                    "FileOrCreate",
                    "File",
                    "Socket",
                    "CharDevice",
                    "BlockDevice",
                ),
            )
        empty_dir = vol.get("emptyDir")
        if isinstance(empty_dir, dict):
            enum(errs, empty_dir, "medium", f"{p}.emptyDir", ("", "Memory"))
            if empty_dir.get("sizeLimit") is not None:
                try:
                    parse_quantity(empty_dir["sizeLimit"])
                except ValueError as exc:
                    errs.append(invalid(f"{p}.emptyDir.sizeLimit", empty_dir["sizeLimit"], str(exc)))
        for source, ref in (("configMap", "name"), ("secret", "secretName")):
            src = vol.get(source)
            if isinstance(src, dict):
                if not src.get(ref):
                    errs.append(required(f"{p}.{source}.{ref}"))
                errs += _validate_items(dicts_of(src.get("items")), f"{p}.{source}.items")
                errs += _validate_mode(src, "defaultMode", f"{p}.{source}")
        downward = vol.get("downwardAPI")
        if isinstance(downward, dict):
            errs += _validate_mode(downward, "defaultMode", f"{p}.downwardAPI")
            for j, item in enumerate(dicts_of(downward.get("items"))):
                errs += _validate_mode(item, "mode", f"{p}.downwardAPI.items[{j}]")
        projected = vol.get("projected")
        if isinstance(projected, dict):
            errs += _validate_mode(projected, "defaultMode", f"{p}.projected")
            for j, src in enumerate(dicts_of(projected.get("sources"))):
                sp = f"{p}.projected.sources[{j}]"
                kinds = [
                    k
                    for k in ("configMap", "secret", "downwardAPI", "serviceAccountToken")
                    if src.get(k) is not None
                ]
                if len(kinds) != 1:
                    errs.append(invalid(sp, "", "must specify exactly one projection source"))
                for k in ("configMap", "secret"):
                    if isinstance(src.get(k), dict):
                        errs += _validate_items(dicts_of(src[k].get("items")), f"{sp}.{k}.items")
                for j2, item in enumerate(dicts_of(dict_of(src.get("downwardAPI")).get("items"))):
                    errs += _validate_mode(item, "mode", f"{sp}.downwardAPI.items[{j2}]")
                expiration = dict_of(src.get("serviceAccountToken")).get("expirationSeconds")
                if expiration is not None and expiration < 10 * 60:
                    errs.append(invalid(f"{sp}.serviceAccountToken.expirationSeconds", expiration,
                                        "may not specify a duration less than 10 minutes"))
                elif expiration is not None and expiration > 1 << 32:
                    errs.append(invalid(f"{sp}.serviceAccountToken.expirationSeconds", expiration,
                                        "may not specify a duration larger than 2^32 seconds"))
    return errs, names


def _validate_items(items: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, item in enumerate(items):
        if not item.get("key"):
            errs.append(required(f"{path}[{i}].key"))
        if not item.get("path"):
            errs.append(required(f"{path}[{i}].path"))
        else:
            errs += _relative_path_errors(item["path"], f"{path}[{i}].path")
        errs += _validate_mode(item, "mode", f"{path}[{i}]")
    return errs


def _validate_mode(obj: dict[str, Any], name: str, path: str) -> list[FieldError]:
    mode = obj.get(name)
    if mode is not None and not 0 <= mode <= 0o777:
        return [
            invalid(f"{path}.{name}", mode, "must be a number between 0 and 0777 (octal), both inclusive")
        ]
    return []


def _validate_tolerations(tolerations: list[dict[str, Any]], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, t in enumerate(tolerations):
        p = f"{path}[{i}]"
        key = t.get("key") or ""
        operator = t.get("operator") or "Equal"
        if key:
            err = label_key_error(key)
            if err:
                errs.append(invalid(f"{p}.key", key, err))
        elif operator != "Exists":
            errs.append(
                invalid(
                    f"{p}.operator",
                    operator,
                    'operator must be Exists when `key` is empty, which means "match all values and all keys"',
                )
            )
        if operator == "Exists":
            if t.get("value"):
                errs.append(
                    invalid(f"{p}.operator", t["value"], "value must be empty when `operator` is 'Exists'")
                )
        elif operator == "Equal":
            err = label_value_error(t.get("value") or "")
            if err:
                errs.append(invalid(f"{p}.value", t.get("value"), err))
        else:
            errs.append(not_supported(f"{p}.operator", operator, ("Equal", "Exists")))
        effect = t.get("effect")
        if effect:
            enum(errs, t, "effect", p, TAINT_EFFECTS)
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(
                invalid(
                    f"{p}.effect", effect or "", "effect must be 'NoExecute' when `tolerationSeconds` is set"
                )
            )
    return errs


def validate_pod_spec(spec: Any, path: str = "spec") -> list[FieldError]:
    """Rules of a PodSpec at `path` (a Pod's `spec` or a template's `spec.template.spec`)."""
    if not isinstance(spec, dict):
        return [required(path)]
    errs: list[FieldError] = []
    vol_errs, volume_names = _validate_volumes(dicts_of(spec.get("volumes")), f"{path}.volumes")
    errs += vol_errs
    containers = dicts_of(spec.get("containers"))
    if not containers:
        errs.append(required(f"{path}.containers"))
    names: set[str] = set()
    for group, init in (("initContainers", True), ("containers", False)):
        for i, c in enumerate(dicts_of(spec.get(group))):
            p = f"{path}.{group}[{i}]"
            errs += _validate_container(c, p, volume_names, init)
            name = c.get("name")
            if name:
                if name in names:
                    errs.append(duplicate(f"{p}.name", name))
                names.add(name)
    enum(errs, spec, "restartPolicy", path, RESTART_POLICIES)
    enum(errs, spec, "dnsPolicy", path, DNS_POLICIES)
    nonnegative(errs, spec, "terminationGracePeriodSeconds", path)
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not 1 <= deadline <= MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, f"must be between 1 and {MAX_INT32}, inclusive"))
    for fld, rule in (
        ("hostname", dns1123_label_error),
        ("subdomain", dns1123_label_error),
        ("serviceAccountName", dns1123_subdomain_error),
        ("nodeName", dns1123_subdomain_error),
        ("schedulerName", dns1123_subdomain_error),
        ("priorityClassName", dns1123_subdomain_error),
    ):
        value = spec.get(fld)
        if value:
            err = rule(value)
            if err:
                errs.append(invalid(f"{path}.{fld}", value, err))
    errs += validate_labels(dict_of(spec.get("nodeSelector")), f"{path}.nodeSelector")
    errs += _validate_tolerations(dicts_of(spec.get("tolerations")), f"{path}.tolerations")
    for i, ref in enumerate(dicts_of(spec.get("imagePullSecrets"))):
        if not ref.get("name"):
            errs.append(required(f"{path}.imagePullSecrets[{i}].name"))
    for i, alias in enumerate(dicts_of(spec.get("hostAliases"))):
        try:
            ipaddress.ip_address(alias.get("ip") or "")
        except ValueError:
            errs.append(invalid(f"{path}.hostAliases[{i}].ip", alias.get("ip"), "must be a valid IP address"))
    sc = dict_of(spec.get("securityContext"))
    for fld in ("runAsUser", "runAsGroup", "fsGroup"):
        _id_range(errs, sc, fld, f"{path}.securityContext")
    for i, gid in enumerate(list_of(sc.get("supplementalGroups"))):
        if gid is not None and not 0 <= gid <= MAX_INT32:
            errs.append(invalid(f"{path}.securityContext.supplementalGroups[{i}]", gid,
                                f"must be between 0 and {MAX_INT32}, inclusive"))
    if spec.get("dnsPolicy") == "None" and not spec.get("dnsConfig"):
        errs.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    return errs


# --- workloads: objects holding a pod template ----------------------------------------------------


def validate_workload(
    kind: str, obj: dict[str, Any], spec_rules: Callable[[dict[str, Any]], list[FieldError]] | None = None
) -> list[FieldError]:
    """Rules of a workload holding a pod template (ReplicaSet, Deployment): replicas and counts,
    a non-empty selector matching the template's labels, the template's spec (restartPolicy
    Always, no activeDeadlineSeconds), then `spec_rules(spec)` of the kind, then a status of
    non-negative counts."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    for fld in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        nonnegative(errs, spec, fld, "spec")
    selector_spec = spec.get("selector")
    selector = None
    if selector_spec is None:
        errs.append(required("spec.selector"))
    elif not selector_spec.get("matchLabels") and not selector_spec.get("matchExpressions"):
        errs.append(invalid("spec.selector", selector_spec, f"empty selector is invalid for {kind.lower()}"))
    else:
        errs += validate_labels(dict_of(selector_spec.get("matchLabels")), "spec.selector.matchLabels")
        try:
            selector = selector_from_spec(selector_spec)
        except SelectorError as exc:
            errs.append(invalid("spec.selector", selector_spec, str(exc)))

    template = spec.get("template")
    if not isinstance(template, dict):
        errs.append(required("spec.template"))
        return errs
    labels = dict_of(dict_of(template.get("metadata")).get("labels"))
    errs += validate_labels(labels, "spec.template.metadata.labels")
    if selector is not None and not selector.matches(labels):
        errs.append(
            invalid("spec.template.metadata.labels", labels, "selector does not match template labels")
        )
    template_spec = template.get("spec")
    errs += validate_pod_spec(template_spec, "spec.template.spec")
    if isinstance(template_spec, dict):
        policy = template_spec.get("restartPolicy")
        if policy is not None and policy != "Always":
            errs.append(not_supported("spec.template.spec.restartPolicy", policy, ("Always",)))
        if template_spec.get("activeDeadlineSeconds") is not None:
            errs.append(
                forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in ReplicaSet is not Supported",
                )
            )

    if spec_rules is not None:
        errs += spec_rules(spec)
    status = dict_of(obj.get("status"))
    for fld, value in status.items():
        if isinstance(value, int) and value < 0:
            errs.append(invalid(f"status.{fld}", value, "must be greater than or equal to 0"))
    return errs


def validate_selector_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    """A workload's `spec.selector` is immutable once set."""
    new_sel = dict_of(new.get("spec")).get("selector")
    old_sel = dict_of(old.get("spec")).get("selector")
    if old_sel is not None and new_sel != old_sel:
        return [invalid("spec.selector", new_sel, "field is immutable")]
    return []
