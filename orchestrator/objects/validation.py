"""Semantic validation of objects, producing Kubernetes-style field errors.

`validate(kind, obj, old=None)` returns a list of `FieldError`s (empty when the object is
valid); the API layer turns a non-empty list into a 422 Invalid Status with one `cause` per
error (`FieldError.cause()`), so messages read like the API server's:
`spec.containers[0].image: Required value`.

Validation runs in three layers:

1. Schema (`schema.check`): unknown fields (`unknown field "spec.x"`, strict field
   validation) and mistyped values, integers wider than their field's int32 / int64 (a
   `FieldValueTypeInvalid` naming the field and the range) included. If any value has the
   wrong type the semantic layer is skipped, since its rules assume well-typed input;
   `type_errors` is that check alone, which writes run before defaulting.
2. Object metadata, common to all kinds: name/generateName and their per-kind format
   (`NAME_RULES`: DNS-1123 label for Namespace, subdomain for the others), namespace, labels,
   annotations, owner references, finalizers.
3. The kind's own rules (`_VALIDATORS`: among them Kubernetes' minimums and ranges within the
   Go type, e.g. replicas >= 0, ports 1-65535, user and group ids 0-MaxInt32) and, when `old`
   is given, its update rules (`_UPDATE_VALIDATORS`): immutable selectors, the pod spec update
   restriction, one-shot `spec.nodeName`, immutable ConfigMaps/Secrets, node pod CIDRs.

Validation expects defaulted objects (call `defaults.apply_defaults` first, on update too),
as the API server defaults every write before validating it; given anything else it reports
errors rather than raising.

The quantity parsers (`parse_quantity`, `parse_cpu_quantity` → cores, `parse_memory_quantity`
→ bytes) follow resource.Quantity's syntax and are shared with the scheduler and the agent.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from . import schema
from .kinds import KINDS
from .selectors import SelectorError, label_key_error, label_value_error, selector_from_spec

# --- errors -----------------------------------------------------------------------------------

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
TYPE_INVALID = "FieldValueTypeInvalid"
FORBIDDEN = "FieldValueForbidden"
NOT_FOUND = "FieldValueNotFound"
TOO_LONG = "FieldValueTooLong"


@dataclass(frozen=True)
class FieldError:
    field: str
    type: str
    message: str

    def cause(self) -> dict[str, str]:
        return {"reason": self.type, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _show(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, REQUIRED, f"Required value: {detail}" if detail else "Required value")


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, INVALID, f"Invalid value: {_show(value)}: {detail}")


def not_supported(field: str, value: Any, supported: Iterable[str]) -> FieldError:
    choices = ", ".join(f'"{s}"' for s in sorted(supported))
    return FieldError(field, NOT_SUPPORTED, f"Unsupported value: {_show(value)}: supported values: {choices}")


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(field, DUPLICATE, f"Duplicate value: {_show(value)}")


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, FORBIDDEN, f"Forbidden: {detail}")


def not_found(field: str, value: Any) -> FieldError:
    return FieldError(field, NOT_FOUND, f"Not found: {_show(value)}")


# --- quantities -------------------------------------------------------------------------------

_QUANTITY_RE = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_EXPONENT_RE = re.compile(r"^[eE]([+-]?[0-9]+)$")
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
QUANTITY_SYNTAX = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)


def parse_quantity(q: Any) -> Decimal:
    """A resource.Quantity ("100m", "64Mi", "1e3", 2, 0.5) as an exact Decimal."""
    if isinstance(q, bool):
        raise ValueError(f"invalid quantity {q!r}: {QUANTITY_SYNTAX}")
    if isinstance(q, int):
        return Decimal(q)
    if isinstance(q, float):
        if not math.isfinite(q):
            raise ValueError(f"invalid quantity {q!r}: must be finite")
        return Decimal(repr(q))
    if not isinstance(q, str):
        raise ValueError(f"invalid quantity {q!r}: must be a string or a number")
    m = _QUANTITY_RE.match(q)
    if not m:
        raise ValueError(f"invalid quantity {q!r}: {QUANTITY_SYNTAX}")
    number, suffix = m.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(f"invalid quantity {q!r}: {QUANTITY_SYNTAX}") from None
    if suffix in _SUFFIXES:
        return value * _SUFFIXES[suffix]
    exp = _EXPONENT_RE.match(suffix)
    if exp:
        return value.scaleb(int(exp.group(1)))
    raise ValueError(f"invalid quantity {q!r}: unknown suffix {suffix!r}; {QUANTITY_SYNTAX}")


def parse_cpu_quantity(q: Any) -> float:
    """CPU quantity in cores: "100m" → 0.1, "2" → 2.0, 0.5 → 0.5. Raises ValueError."""
    return float(parse_quantity(q))


def parse_memory_quantity(q: Any) -> int:
    """Memory (or storage) quantity in bytes, rounded up: "64Mi" → 67108864, "1G" → 10**9."""
    return math.ceil(parse_quantity(q))


# --- name formats -----------------------------------------------------------------------------

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL}$")
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN}$")
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL}$")
_ENV_VAR_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONFIG_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_PERCENT_RE = re.compile(r"^[0-9]+%$")


def dns1123_label_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1123_LABEL_RE.match(value):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
            "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
            f"regex used for validation is '{_DNS1123_LABEL}')"
        )
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        return (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
            "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
            f"regex used for validation is '{_DNS1123_SUBDOMAIN}')"
        )
    return None


def dns1035_label_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1035_LABEL_RE.match(value):
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
            "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
            f"'abc-123', regex used for validation is '{_DNS1035_LABEL}')"
        )
    return None


def port_name_error(value: str) -> str | None:
    """IANA_SVC_NAME: ≤15 lowercase alphanumerics or '-', with a letter, no '--', no edge '-'."""
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not re.match(r"^[-a-z0-9]+$", value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if not re.search(r"[a-z]", value):
        return "must contain at least one letter (a-z)"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def config_key_error(key: str) -> str | None:
    if len(key) > 253:
        return "must be no more than 253 characters"
    if not _CONFIG_KEY_RE.match(key):
        return (
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
            "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        )
    if key in (".", ".."):
        return f"must not be '{key}'"
    if key.startswith(".."):
        return "must not start with '..'"
    return None


# Name format of each kind (default: DNS-1123 subdomain). Services will use dns1035_label_error.
NAME_RULES: dict[str, Callable[[str], str | None]] = {
    "Namespace": dns1123_label_error,
    "Service": dns1035_label_error,
}
_NAMESPACED = {k.kind: k.namespaced for k in KINDS}


MAX_INT32 = schema.INT32_RANGE[1]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v if isinstance(v, dict) else {} for v in _list(value)]


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _nonnegative(errs: list[FieldError], obj: dict[str, Any], name: str, path: str) -> None:
    value = obj.get(name)
    if value is not None and value < 0:
        errs.append(invalid(_at(path, name), value, "must be greater than or equal to 0"))


def _id_range(errs: list[FieldError], obj: dict[str, Any], name: str, path: str) -> None:
    """A user or group id: 0 to MaxInt32 (IsValidUserID / IsValidGroupID)."""
    value = obj.get(name)
    if value is not None and not 0 <= value <= MAX_INT32:
        errs.append(invalid(_at(path, name), value, f"must be between 0 and {MAX_INT32}, inclusive"))


def _positive(errs: list[FieldError], obj: dict[str, Any], name: str, path: str) -> None:
    value = obj.get(name)
    if value is not None and value <= 0:
        errs.append(invalid(_at(path, name), value, "must be greater than 0"))


def _enum(errs: list[FieldError], obj: dict[str, Any], name: str, path: str, allowed: Iterable[str]) -> None:
    value = obj.get(name)
    if value is not None and value not in allowed:
        errs.append(not_supported(_at(path, name), value, allowed))


# --- metadata ---------------------------------------------------------------------------------


def validate_labels(labels: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    for key, value in labels.items():
        err = label_key_error(key)
        if err:
            errs.append(invalid(path, key, err))
        err = label_value_error(value)
        if err:
            errs.append(invalid(f"{path}[{key}]", value, err))
    return errs


def _validate_annotations(annotations: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    total = 0
    for key, value in annotations.items():
        err = label_key_error(key.lower())
        if err:
            errs.append(invalid(path, key, err))
        total += len(key) + len(value if isinstance(value, str) else "")
    if total > 256 * 1024:
        errs.append(FieldError(path, TOO_LONG, "Too long: must have at most 262144 bytes"))
    return errs


def validate_object_meta(kind: str, obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [required("metadata")]
    name_rule = NAME_RULES.get(kind, dns1123_subdomain_error)
    name = meta.get("name")
    generate_name = meta.get("generateName")
    if name:
        err = name_rule(name)
        if err:
            errs.append(invalid("metadata.name", name, err))
    elif generate_name:
        # validate the prefix as a name, with a trailing '-' masked (it is followed by a suffix)
        err = name_rule(generate_name[:-1] + "a" if generate_name.endswith("-") else generate_name)
        if err:
            errs.append(invalid("metadata.generateName", generate_name, err))
    else:
        errs.append(required("metadata.name", "name or generateName is required"))
    namespace = meta.get("namespace")
    namespaced = _NAMESPACED.get(kind, True)
    if namespace:
        if not namespaced:
            errs.append(forbidden("metadata.namespace", "not allowed on this type"))
        else:
            err = dns1123_label_error(namespace)
            if err:
                errs.append(invalid("metadata.namespace", namespace, err))
    errs += validate_labels(_dict(meta.get("labels")), "metadata.labels")
    errs += _validate_annotations(_dict(meta.get("annotations")), "metadata.annotations")
    controllers = 0
    for i, ref in enumerate(_dicts(meta.get("ownerReferences"))):
        path = f"metadata.ownerReferences[{i}]"
        for fld in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(fld):
                errs.append(required(f"{path}.{fld}"))
        if ref.get("controller"):
            controllers += 1
    if controllers > 1:
        errs.append(
            invalid(
                "metadata.ownerReferences", controllers, "Only one reference can have Controller set to true"
            )
        )
    for i, fin in enumerate(_list(meta.get("finalizers"))):
        err = label_key_error(fin)
        if err:
            errs.append(invalid(f"metadata.finalizers[{i}]", fin, err))
    return errs


def _validate_meta_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = []
    nm, om = _dict(new.get("metadata")), _dict(old.get("metadata"))
    for fld in ("name", "namespace", "uid"):
        if om.get(fld) and nm.get(fld) and nm.get(fld) != om.get(fld):
            errs.append(invalid(f"metadata.{fld}", nm.get(fld), "field is immutable"))
    return errs


# --- pods -------------------------------------------------------------------------------------

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
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


def _validate_port_ref(port: Any, path: str) -> list[FieldError]:
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
        errs += _validate_port_ref(http_get.get("port"), f"{path}.httpGet.port")
        _enum(errs, http_get, "scheme", f"{path}.httpGet", ("HTTP", "HTTPS"))
    tcp = handler.get("tcpSocket")
    if isinstance(tcp, dict):
        errs += _validate_port_ref(tcp.get("port"), f"{path}.tcpSocket.port")
    grpc = handler.get("grpc")
    if isinstance(grpc, dict):
        errs += _validate_port_ref(grpc.get("port"), f"{path}.grpc.port")
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
    _nonnegative(errs, probe, "initialDelaySeconds", path)
    for fld in ("timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold",
                "terminationGracePeriodSeconds"):
        _positive(errs, probe, fld, path)
    if which in ("livenessProbe", "startupProbe"):
        threshold = probe.get("successThreshold")
        if threshold is not None and threshold != 1:
            errs.append(invalid(f"{path}.successThreshold", threshold, "must be 1"))
    return errs


def _validate_resources(resources: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    parsed: dict[str, dict[str, Decimal]] = {"limits": {}, "requests": {}}
    for section in ("limits", "requests"):
        for name, quantity in _dict(resources.get(section)).items():
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
            sel = _dict(source.get(ref))
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
    _enum(errs, c, "imagePullPolicy", path, PULL_POLICIES)
    _enum(errs, c, "terminationMessagePolicy", path, TERMINATION_MESSAGE_POLICIES)
    if init:
        _enum(errs, c, "restartPolicy", path, ("Always",))
    elif c.get("restartPolicy") is not None:
        errs.append(forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))

    port_names: set[str] = set()
    for i, port in enumerate(_dicts(c.get("ports"))):
        p = f"{path}.ports[{i}]"
        cp = port.get("containerPort")
        if cp is None or cp == 0:
            errs.append(required(f"{p}.containerPort"))
        elif not 1 <= cp <= 65535:
            errs.append(invalid(f"{p}.containerPort", cp, "must be between 1 and 65535, inclusive"))
        hp = port.get("hostPort")
        if hp and not 1 <= hp <= 65535:
            errs.append(invalid(f"{p}.hostPort", hp, "must be between 1 and 65535, inclusive"))
        _enum(errs, port, "protocol", p, PROTOCOLS)
        pname = port.get("name")
        if pname:
            err = port_name_error(pname)
            if err:
                errs.append(invalid(f"{p}.name", pname, err))
            elif pname in port_names:
                errs.append(duplicate(f"{p}.name", pname))
            port_names.add(pname)

    errs += _validate_env(_dicts(c.get("env")), f"{path}.env")
    for i, src in enumerate(_dicts(c.get("envFrom"))):
        p = f"{path}.envFrom[{i}]"
        refs = [k for k in ("configMapRef", "secretRef") if src.get(k) is not None]
        if len(refs) != 1:
            errs.append(invalid(p, "", "must specify exactly one of: `configMapRef` or `secretRef`"))
        for ref in refs:
            if not _dict(src.get(ref)).get("name"):
                errs.append(required(f"{p}.{ref}.name"))
        prefix = src.get("prefix")
        if prefix and not _ENV_VAR_RE.match(prefix):
            errs.append(invalid(f"{p}.prefix", prefix, "must be a valid environment variable name prefix"))

    errs += _validate_resources(_dict(c.get("resources")), f"{path}.resources")

    mount_paths: set[str] = set()
    for i, mount in enumerate(_dicts(c.get("volumeMounts"))):
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
    lifecycle = _dict(c.get("lifecycle"))
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            errs += _validate_handler(
                lifecycle[hook], f"{path}.lifecycle.{hook}", ("exec", "httpGet", "tcpSocket", "sleep")
            )
    sc = _dict(c.get("securityContext"))
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
            _enum(
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
            _enum(errs, empty_dir, "medium", f"{p}.emptyDir", ("", "Memory"))
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
                errs += _validate_items(_dicts(src.get("items")), f"{p}.{source}.items")
                errs += _validate_mode(src, "defaultMode", f"{p}.{source}")
        downward = vol.get("downwardAPI")
        if isinstance(downward, dict):
            errs += _validate_mode(downward, "defaultMode", f"{p}.downwardAPI")
            for j, item in enumerate(_dicts(downward.get("items"))):
                errs += _validate_mode(item, "mode", f"{p}.downwardAPI.items[{j}]")
        projected = vol.get("projected")
        if isinstance(projected, dict):
            errs += _validate_mode(projected, "defaultMode", f"{p}.projected")
            for j, src in enumerate(_dicts(projected.get("sources"))):
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
                        errs += _validate_items(_dicts(src[k].get("items")), f"{sp}.{k}.items")
                for j2, item in enumerate(_dicts(_dict(src.get("downwardAPI")).get("items"))):
                    errs += _validate_mode(item, "mode", f"{sp}.downwardAPI.items[{j2}]")
                expiration = _dict(src.get("serviceAccountToken")).get("expirationSeconds")
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
            _enum(errs, t, "effect", p, TAINT_EFFECTS)
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
    vol_errs, volume_names = _validate_volumes(_dicts(spec.get("volumes")), f"{path}.volumes")
    errs += vol_errs
    containers = _dicts(spec.get("containers"))
    if not containers:
        errs.append(required(f"{path}.containers"))
    names: set[str] = set()
    for group, init in (("initContainers", True), ("containers", False)):
        for i, c in enumerate(_dicts(spec.get(group))):
            p = f"{path}.{group}[{i}]"
            errs += _validate_container(c, p, volume_names, init)
            name = c.get("name")
            if name:
                if name in names:
                    errs.append(duplicate(f"{p}.name", name))
                names.add(name)
    _enum(errs, spec, "restartPolicy", path, RESTART_POLICIES)
    _enum(errs, spec, "dnsPolicy", path, DNS_POLICIES)
    _nonnegative(errs, spec, "terminationGracePeriodSeconds", path)
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
    errs += validate_labels(_dict(spec.get("nodeSelector")), f"{path}.nodeSelector")
    errs += _validate_tolerations(_dicts(spec.get("tolerations")), f"{path}.tolerations")
    for i, ref in enumerate(_dicts(spec.get("imagePullSecrets"))):
        if not ref.get("name"):
            errs.append(required(f"{path}.imagePullSecrets[{i}].name"))
    for i, alias in enumerate(_dicts(spec.get("hostAliases"))):
        try:
            ipaddress.ip_address(alias.get("ip") or "")
        except ValueError:
            errs.append(invalid(f"{path}.hostAliases[{i}].ip", alias.get("ip"), "must be a valid IP address"))
    sc = _dict(spec.get("securityContext"))
    for fld in ("runAsUser", "runAsGroup", "fsGroup"):
        _id_range(errs, sc, fld, f"{path}.securityContext")
    for i, gid in enumerate(_list(sc.get("supplementalGroups"))):
        if gid is not None and not 0 <= gid <= MAX_INT32:
            errs.append(invalid(f"{path}.securityContext.supplementalGroups[{i}]", gid,
                                f"must be between 0 and {MAX_INT32}, inclusive"))
    if spec.get("dnsPolicy") == "None" and not spec.get("dnsConfig"):
        errs.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    return errs


def _validate_pod(obj: dict[str, Any]) -> list[FieldError]:
    errs = validate_pod_spec(obj.get("spec"), "spec")
    status = _dict(obj.get("status"))
    _enum(errs, status, "phase", "status", POD_PHASES)
    for group in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for i, cs in enumerate(_dicts(status.get(group))):
            _nonnegative(errs, cs, "restartCount", f"status.{group}[{i}]")
    return errs


POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` "
    "(only additions to existing tolerations), `spec.nodeName` (only from unset)"
)


def _diff_paths(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            _diff_paths(a.get(key), b.get(key), f"{path}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff_paths(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(path)


def _validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    new_spec = copy.deepcopy(_dict(new.get("spec")))
    old_spec = _dict(old.get("spec"))

    old_node, new_node = old_spec.get("nodeName"), new_spec.get("nodeName")
    if old_node and new_node != old_node:
        errs.append(
            invalid(
                "spec.nodeName",
                new_node or "",
                f'field is immutable once set: pod is bound to node "{old_node}"',
            )
        )
    new_spec.pop("nodeName", None)

    old_deadline, new_deadline = old_spec.get("activeDeadlineSeconds"), new_spec.get("activeDeadlineSeconds")
    if old_deadline is not None:
        if new_deadline is None:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"
                )
            )
        elif new_deadline > old_deadline:
            errs.append(
                invalid(
                    "spec.activeDeadlineSeconds", new_deadline, "must be less than or equal to previous value"
                )
            )
    new_spec.pop("activeDeadlineSeconds", None)

    old_tolerations = _list(old_spec.get("tolerations"))
    new_tolerations = _list(new_spec.get("tolerations"))
    missing = [t for t in old_tolerations if t not in new_tolerations]
    if missing:
        errs.append(
            forbidden(
                "spec.tolerations", f"existing toleration {_show(missing[0])} must not be removed or changed"
            )
        )
    new_spec.pop("tolerations", None)

    for group in ("containers", "initContainers"):
        new_list, old_list = _list(new_spec.get(group)), _list(old_spec.get(group))
        if len(new_list) == len(old_list):
            for nc, oc in zip(new_list, old_list, strict=True):
                if isinstance(nc, dict) and isinstance(oc, dict):
                    # images may change (an empty image is reported by the spec rules)
                    if "image" in oc:
                        nc["image"] = oc["image"]
                    else:
                        nc.pop("image", None)

    comparable_old = {
        k: v for k, v in old_spec.items() if k not in ("nodeName", "activeDeadlineSeconds", "tolerations")
    }
    if new_spec != comparable_old:
        changed: list[str] = []
        _diff_paths(comparable_old, new_spec, "spec", changed)
        shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
        errs.append(forbidden("spec", f"{POD_UPDATE_MESSAGE} (changed: {shown})"))
    return errs


# --- workloads --------------------------------------------------------------------------------


def _int_or_percent(value: Any, path: str) -> tuple[list[FieldError], int | None, bool]:
    """Validate an IntOrString count (None counts as 0); returns (errors, number, is_percent)."""
    if value is None:
        return [], 0, False
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return (
                [
                    invalid(
                        path,
                        value,
                        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')",
                    )
                ],
                None,
                True,
            )
        return [], int(value[:-1]), True
    if value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")], None, False
    return [], int(value), False


def _validate_workload(kind: str, obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    for fld in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        _nonnegative(errs, spec, fld, "spec")
    selector_spec = spec.get("selector")
    selector = None
    if selector_spec is None:
        errs.append(required("spec.selector"))
    elif not selector_spec.get("matchLabels") and not selector_spec.get("matchExpressions"):
        errs.append(invalid("spec.selector", selector_spec, f"empty selector is invalid for {kind.lower()}"))
    else:
        errs += validate_labels(_dict(selector_spec.get("matchLabels")), "spec.selector.matchLabels")
        try:
            selector = selector_from_spec(selector_spec)
        except SelectorError as exc:
            errs.append(invalid("spec.selector", selector_spec, str(exc)))

    template = spec.get("template")
    if not isinstance(template, dict):
        errs.append(required("spec.template"))
        return errs
    labels = _dict(_dict(template.get("metadata")).get("labels"))
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

    if kind == "Deployment":
        errs += _validate_deployment_spec(spec)
    status = _dict(obj.get("status"))
    for fld, value in status.items():
        if isinstance(value, int) and value < 0:
            errs.append(invalid(f"status.{fld}", value, "must be greater than or equal to 0"))
    return errs


def _validate_deployment_spec(spec: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    strategy = _dict(spec.get("strategy"))
    stype = strategy.get("type")
    if stype is not None and stype not in ("RollingUpdate", "Recreate"):
        errs.append(not_supported("spec.strategy.type", stype, ("Recreate", "RollingUpdate")))
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate" and rolling is not None:
        errs.append(
            forbidden(
                "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
            )
        )
    elif isinstance(rolling, dict):
        surge_errs, surge, _ = _int_or_percent(
            rolling.get("maxSurge", 0), "spec.strategy.rollingUpdate.maxSurge"
        )
        unav_errs, unavailable, unav_pct = _int_or_percent(
            rolling.get("maxUnavailable", 0), "spec.strategy.rollingUpdate.maxUnavailable"
        )
        errs += surge_errs + unav_errs
        if unav_pct and unavailable is not None and unavailable > 100:
            errs.append(
                invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    rolling.get("maxUnavailable"),
                    "must not be greater than 100%",
                )
            )
        if surge == 0 and unavailable == 0:
            errs.append(
                invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    rolling.get("maxUnavailable", 0),
                    "may not be 0 when `maxSurge` is 0",
                )
            )
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        if deadline <= 0:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than 0"))
        elif deadline <= (spec.get("minReadySeconds") or 0):
            errs.append(
                invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds")
            )
    return errs


def _validate_workload_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    new_sel = _dict(new.get("spec")).get("selector")
    old_sel = _dict(old.get("spec")).get("selector")
    if old_sel is not None and new_sel != old_sel:
        return [invalid("spec.selector", new_sel, "field is immutable")]
    return []


# --- config ----------------------------------------------------------------------------------

MAX_CONFIG_SIZE = 1024 * 1024


def _validate_keys(data: dict[str, Any], path: str) -> list[FieldError]:
    errs = []
    for key in data:
        err = config_key_error(key)
        if err:
            errs.append(invalid(path, key, err))
    return errs


def _validate_config_map(obj: dict[str, Any]) -> list[FieldError]:
    data, binary = _dict(obj.get("data")), _dict(obj.get("binaryData"))
    errs = _validate_keys(data, "data") + _validate_keys(binary, "binaryData")
    size = sum(len(k) + len((v or "").encode()) for k, v in data.items())
    for key, value in binary.items():
        if key in data:
            errs.append(invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        try:
            size += len(key) + len(base64.b64decode(value or "", validate=True))
        except (binascii.Error, ValueError):
            errs.append(invalid(f"binaryData[{key}]", "<binary data>", "must be base64-encoded"))
    if size > MAX_CONFIG_SIZE:
        errs.append(FieldError("", TOO_LONG, f"Too long: must have at most {MAX_CONFIG_SIZE} bytes"))
    return errs


_MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")


def _validate_lease(obj: dict[str, Any]) -> list[FieldError]:
    """coordination.k8s.io/v1 Lease: positive duration, non-negative transitions, RFC 3339 times."""
    spec = _dict(obj.get("spec"))
    errs: list[FieldError] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        errs.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    for key in ("acquireTime", "renewTime"):
        value = spec.get(key)
        if value is not None and not _MICRO_TIME.match(str(value)):
            errs.append(invalid(f"spec.{key}", value, "must be an RFC 3339 time, e.g. 2006-01-02T15:04:05.000000Z"))
    return errs


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def _validate_secret(obj: dict[str, Any]) -> list[FieldError]:
    data, string_data = _dict(obj.get("data")), _dict(obj.get("stringData"))
    errs = _validate_keys(data, "data") + _validate_keys(string_data, "stringData")
    size = 0
    for key, value in data.items():
        try:
            size += len(key) + len(base64.b64decode(value or "", validate=True))
        except (binascii.Error, ValueError):
            errs.append(invalid(f"data[{key}]", "<secret data>", "must be base64-encoded"))
    size += sum(len(k) + len((v or "").encode()) for k, v in string_data.items())
    if size > MAX_CONFIG_SIZE:
        errs.append(FieldError("data", TOO_LONG, f"Too long: must have at most {MAX_CONFIG_SIZE} bytes"))
    stype = obj.get("type")
    for key in _SECRET_REQUIRED_KEYS.get(stype or "", ()):
        if key not in data and key not in string_data:
            errs.append(required(f"data[{key}]", f"secrets of type {stype} must contain {key}"))
    return errs


def _validate_immutable_data_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = []
    if old.get("immutable"):
        if not new.get("immutable"):
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        for fld in ("data", "binaryData"):
            if (new.get(fld) or {}) != (old.get(fld) or {}):
                errs.append(forbidden(fld, "field is immutable when `immutable` is set"))
        if new.get("stringData"):
            errs.append(forbidden("stringData", "field is immutable when `immutable` is set"))
    if old.get("type") and new.get("type") and old["type"] != new["type"]:
        errs.append(invalid("type", new["type"], "field is immutable"))
    return errs


# --- cluster objects ---------------------------------------------------------------------------


def _validate_event(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    involved = obj.get("involvedObject")
    if not involved:
        return [required("involvedObject")]
    ns = _dict(obj.get("metadata")).get("namespace")
    ref_ns = involved.get("namespace")
    if ref_ns and ns and ref_ns != ns:
        errs.append(invalid("involvedObject.namespace", ref_ns, "does not match event.namespace"))
    _enum(errs, obj, "type", "", ("Normal", "Warning"))
    _nonnegative(errs, obj, "count", "")
    return errs


def _validate_cidr(value: Any, path: str) -> list[FieldError]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [invalid(path, value, "must be a valid CIDR (e.g. 10.42.0.0/24)")]
    if "/" not in value:
        return [invalid(path, value, "must be a valid CIDR (e.g. 10.42.0.0/24)")]
    return []


def _validate_node(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = _dict(obj.get("spec"))
    if spec.get("podCIDR"):
        errs += _validate_cidr(spec["podCIDR"], "spec.podCIDR")
    cidrs = _list(spec.get("podCIDRs"))
    for i, cidr in enumerate(cidrs):
        errs += _validate_cidr(cidr, f"spec.podCIDRs[{i}]")
    if len(cidrs) > 2:
        errs.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    if cidrs and spec.get("podCIDR") and cidrs[0] != spec["podCIDR"]:
        errs.append(invalid("spec.podCIDRs", cidrs, "the first element must match spec.podCIDR"))
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(_dicts(spec.get("taints"))):
        p = f"spec.taints[{i}]"
        key = taint.get("key")
        if not key:
            errs.append(required(f"{p}.key"))
        else:
            err = label_key_error(key)
            if err:
                errs.append(invalid(f"{p}.key", key, err))
        err = label_value_error(taint.get("value") or "")
        if err:
            errs.append(invalid(f"{p}.value", taint.get("value"), err))
        effect = taint.get("effect")
        if not effect:
            errs.append(required(f"{p}.effect"))
        else:
            _enum(errs, taint, "effect", p, TAINT_EFFECTS)
        ident = (key or "", effect or "")
        if ident in seen:
            errs.append(duplicate(p, f"{key}:{effect}"))
        seen.add(ident)
    status = _dict(obj.get("status"))
    for section in ("capacity", "allocatable"):
        for name, quantity in _dict(status.get(section)).items():
            try:
                if parse_quantity(quantity) < 0:
                    errs.append(
                        invalid(f"status.{section}[{name}]", quantity, "must be greater than or equal to 0")
                    )
            except ValueError as exc:
                errs.append(invalid(f"status.{section}[{name}]", quantity, str(exc)))
    return errs


def _validate_node_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    errs = []
    ns, os_ = _dict(new.get("spec")), _dict(old.get("spec"))
    for fld in ("podCIDR", "providerID"):
        if os_.get(fld) and ns.get(fld) != os_.get(fld):
            errs.append(
                forbidden(f"spec.{fld}", f'node updates may not change {fld} except from "" to valid')
            )
    if os_.get("podCIDRs") and ns.get("podCIDRs") != os_.get("podCIDRs"):
        errs.append(forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid'))
    return errs


def _validate_namespace(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    _enum(errs, _dict(obj.get("status")), "phase", "status", ("Active", "Terminating"))
    return errs


# --- services ---------------------------------------------------------------------------------

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
SERVICE_PROTOCOLS = ("TCP", "UDP")
SESSION_AFFINITIES = ("None", "ClientIP")
NODE_PORT_RANGE = (30000, 32767)
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def _validate_service(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    stype = spec.get("type") or "ClusterIP"
    _enum(errs, spec, "type", "spec", SERVICE_TYPES)
    _enum(errs, spec, "sessionAffinity", "spec", SESSION_AFFINITIES)
    timeout = _dict(_dict(spec.get("sessionAffinityConfig")).get("clientIP")).get("timeoutSeconds")
    if timeout is not None and not 0 < timeout <= MAX_CLIENT_IP_AFFINITY_SECONDS:
        errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                            f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"))
    _nonnegative(errs, spec, "healthCheckNodePort", "spec")
    errs += validate_labels(_dict(spec.get("selector")), "spec.selector")
    cluster_ip = spec.get("clusterIP")
    headless = cluster_ip == "None"
    if cluster_ip and not headless:
        try:
            ipaddress.IPv4Address(cluster_ip)
        except ValueError:
            errs.append(invalid("spec.clusterIP", cluster_ip, 'must be a valid IPv4 address or "None"'))
    if stype == "ExternalName":
        if not spec.get("externalName"):
            errs.append(required("spec.externalName"))
        elif dns1123_subdomain_error(spec["externalName"].rstrip(".")):
            errs.append(invalid("spec.externalName", spec["externalName"], "must be a valid DNS name"))
    elif headless and stype != "ClusterIP":
        errs.append(invalid("spec.clusterIP", cluster_ip, 'may only be "None" for type ClusterIP'))
    ports = _dicts(spec.get("ports"))
    if not ports and not headless and stype != "ExternalName":
        errs.append(required("spec.ports"))
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        p = f"spec.ports[{i}]"
        name = port.get("name")
        if name:
            err = dns1123_label_error(name)
            if err:
                errs.append(invalid(f"{p}.name", name, err))
            if name in names:
                errs.append(duplicate(f"{p}.name", name))
            names.add(name)
        elif len(ports) > 1:
            errs.append(required(f"{p}.name", "when there is more than one port"))
        number = port.get("port")
        if number is None:
            errs.append(required(f"{p}.port"))
        elif not 1 <= number <= 65535:
            errs.append(invalid(f"{p}.port", number, "must be between 1 and 65535, inclusive"))
        _enum(errs, port, "protocol", p, SERVICE_PROTOCOLS)
        key = (number, port.get("protocol") or "TCP")
        if number is not None and key in seen:
            errs.append(duplicate(p, {"port": number, "protocol": key[1]}))
        seen.add(key)
        if port.get("targetPort") is not None:
            errs += _validate_port_ref(port["targetPort"], f"{p}.targetPort")
        node_port = port.get("nodePort")
        if node_port:
            if stype not in ("NodePort", "LoadBalancer"):
                errs.append(forbidden(f"{p}.nodePort", f"may not be used when `type` is '{stype}'"))
            elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                errs.append(
                    invalid(f"{p}.nodePort", node_port, "provided port is not in the valid range. "
                            f"The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}")
                )
            elif (node_port, key[1]) in node_ports:
                errs.append(duplicate(f"{p}.nodePort", node_port))
            node_ports.add((node_port, key[1]))
    return errs


def _validate_service_update(new: dict[str, Any], old: dict[str, Any]) -> list[FieldError]:
    new_ip = _dict(new.get("spec")).get("clusterIP")
    old_ip = _dict(old.get("spec")).get("clusterIP")
    if old_ip and new_ip != old_ip:
        return [invalid("spec.clusterIP", new_ip or "", "field is immutable")]
    return []


def _validate_endpoints(obj: dict[str, Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, subset in enumerate(_dicts(obj.get("subsets"))):
        for group in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(_dicts(subset.get(group))):
                try:
                    ipaddress.ip_address(addr.get("ip") or "")
                except ValueError:
                    errs.append(invalid(f"subsets[{i}].{group}[{j}].ip", addr.get("ip"), "must be a valid IP address"))
        for j, port in enumerate(_dicts(subset.get("ports"))):
            number = port.get("port")
            if number is None or not 1 <= number <= 65535:
                errs.append(invalid(f"subsets[{i}].ports[{j}].port", number, "must be between 1 and 65535, inclusive"))
    return errs


# --- autoscaling ------------------------------------------------------------------------------

HPA_METRIC_SOURCES = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}
_HPA_TARGET_TYPES = {
    "Resource": ("Utilization", "AverageValue"),
    "ContainerResource": ("Utilization", "AverageValue"),
    "Pods": ("AverageValue",),
    "Object": ("Value", "AverageValue"),
    "External": ("Value", "AverageValue"),
}
_HPA_TARGET_FIELD = {"Utilization": "averageUtilization", "AverageValue": "averageValue", "Value": "value"}


def _validate_metric_target(target: Any, mtype: str, path: str) -> list[FieldError]:
    if not isinstance(target, dict) or not target.get("type"):
        return [required(f"{path}.type")]
    ttype = target["type"]
    allowed = _HPA_TARGET_TYPES[mtype]
    if ttype not in allowed:
        return [not_supported(f"{path}.type", ttype, allowed)]
    errs: list[FieldError] = []
    want = _HPA_TARGET_FIELD[ttype]
    for fld in _HPA_TARGET_FIELD.values():
        if fld != want and target.get(fld) is not None:
            errs.append(forbidden(f"{path}.{fld}", f"may not be set when the target type is {ttype}"))
    value = target.get(want)
    if value is None:
        errs.append(required(f"{path}.{want}", f"must be set for a {ttype} target"))
    elif want == "averageUtilization":
        if value <= 0:
            errs.append(invalid(f"{path}.{want}", value, "must be greater than 0"))
    else:
        try:
            if parse_quantity(value) <= 0:
                errs.append(invalid(f"{path}.{want}", value, "must be positive"))
        except ValueError as exc:
            errs.append(invalid(f"{path}.{want}", value, str(exc)))
    return errs


def _validate_hpa_metric(metric: dict[str, Any], path: str) -> list[FieldError]:
    mtype = metric.get("type")
    if not mtype:
        return [required(f"{path}.type")]
    if mtype not in HPA_METRIC_SOURCES:
        return [not_supported(f"{path}.type", mtype, tuple(HPA_METRIC_SOURCES))]
    key = HPA_METRIC_SOURCES[mtype]
    errs: list[FieldError] = []
    for other in HPA_METRIC_SOURCES.values():
        if other != key and metric.get(other) is not None:
            errs.append(forbidden(f"{path}.{other}", f"must populate the given metric source only ({mtype})"))
    src = metric.get(key)
    if not isinstance(src, dict):
        return errs + [required(f"{path}.{key}", "must populate information for the given metric source")]
    sp = f"{path}.{key}"
    if mtype in ("Resource", "ContainerResource"):
        if not src.get("name"):
            errs.append(required(f"{sp}.name"))
        if mtype == "ContainerResource" and not src.get("container"):
            errs.append(required(f"{sp}.container"))
    else:
        if not _dict(src.get("metric")).get("name"):
            errs.append(required(f"{sp}.metric.name"))
        if mtype == "Object":
            described = _dict(src.get("describedObject"))
            for fld in ("kind", "name"):
                if not described.get(fld):
                    errs.append(required(f"{sp}.describedObject.{fld}"))
    return errs + _validate_metric_target(src.get("target"), mtype, f"{sp}.target")


def _validate_scaling_rules(rules: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None and not 0 <= window <= 3600:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window, "must be between 0 and 3600"))
    _enum(errs, rules, "selectPolicy", path, ("Max", "Min", "Disabled"))
    policies = _dicts(rules.get("policies"))
    if rules.get("policies") is not None and not policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        pp = f"{path}.policies[{i}]"
        if not policy.get("type"):
            errs.append(required(f"{pp}.type"))
        else:
            _enum(errs, policy, "type", pp, ("Pods", "Percent"))
        value = policy.get("value")
        if value is None or value <= 0:
            errs.append(invalid(f"{pp}.value", value, "must be greater than zero"))
        period = policy.get("periodSeconds")
        if period is None or not 0 < period <= 1800:
            errs.append(invalid(f"{pp}.periodSeconds", period, "must be greater than zero and less than or "
                                                               "equal to 1800"))
    return errs


def _validate_hpa(obj: dict[str, Any]) -> list[FieldError]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: list[FieldError] = []
    ref = _dict(spec.get("scaleTargetRef"))
    for fld in ("kind", "name"):
        if not ref.get(fld):
            errs.append(required(f"spec.scaleTargetRef.{fld}"))
    metrics = _dicts(spec.get("metrics"))
    for i, metric in enumerate(metrics):
        errs += _validate_hpa_metric(metric, f"spec.metrics[{i}]")
    lo, hi = spec.get("minReplicas"), spec.get("maxReplicas")
    if lo is not None and lo < 0:
        errs.append(invalid("spec.minReplicas", lo, "must be greater than or equal to 0"))
    elif lo == 0 and not any(m.get("type") in ("Pods", "Object", "External") for m in metrics):
        errs.append(invalid("spec.minReplicas", lo, "must be greater than or equal to 1 (0 needs at least one "
                                                    "Pods, Object or External metric to scale to zero)"))
    if hi is None:
        errs.append(required("spec.maxReplicas"))
    elif hi < 1:
        errs.append(invalid("spec.maxReplicas", hi, "must be greater than 0"))
    elif lo is not None and hi < lo:
        errs.append(invalid("spec.maxReplicas", hi, "must be greater than or equal to `minReplicas`"))
    behavior = _dict(spec.get("behavior"))
    for direction in ("scaleUp", "scaleDown"):
        if isinstance(behavior.get(direction), dict):
            errs += _validate_scaling_rules(behavior[direction], f"spec.behavior.{direction}")
    status = _dict(obj.get("status"))
    for fld in ("currentReplicas", "desiredReplicas"):
        _nonnegative(errs, status, fld, "status")
    return errs


_VALIDATORS: dict[str, Callable[[dict[str, Any]], list[FieldError]]] = {
    "Service": _validate_service,
    "Endpoints": _validate_endpoints,
    "Pod": _validate_pod,
    "ReplicaSet": lambda obj: _validate_workload("ReplicaSet", obj),
    "Deployment": lambda obj: _validate_workload("Deployment", obj),
    "ConfigMap": _validate_config_map,
    "Secret": _validate_secret,
    "Event": _validate_event,
    "Node": _validate_node,
    "Namespace": _validate_namespace,
    "HorizontalPodAutoscaler": _validate_hpa,
    "Lease": _validate_lease,
}

_UPDATE_VALIDATORS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[FieldError]]] = {
    "Service": _validate_service_update,
    "Pod": _validate_pod_update,
    "ReplicaSet": _validate_workload_update,
    "Deployment": _validate_workload_update,
    "ConfigMap": _validate_immutable_data_update,
    "Secret": _validate_immutable_data_update,
    "Node": _validate_node_update,
}


def _show_typed(value: Any) -> str:
    """A mistyped value in a message: scalars as they are, objects and arrays by their type
    (as the API server's schema errors do), so a large value is not echoed back."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return _show(value)


def _schema_errors(kind: str, obj: dict[str, Any]) -> tuple[list[FieldError], bool]:
    """(errors, has_type_errors) from the kind's schema."""
    errs: list[FieldError] = []
    typed = False
    for p in schema.check(kind, obj):
        if p.problem == "unknown":
            errs.append(FieldError(p.path, INVALID, f'unknown field "{p.path}"'))
            continue
        typed = True
        message = f"Invalid value: {_show_typed(p.value)}: {p.path} must be of type {p.expected}"
        if p.problem == "range":
            lo, hi = schema.INT32_RANGE if p.expected == "int32" else schema.INT64_RANGE
            message += f" (between {lo} and {hi}, inclusive)"
        errs.append(FieldError(p.path, TYPE_INVALID, message))
    return errs, typed


def type_errors(kind: str, obj: Any) -> list[FieldError]:
    """The schema errors of `obj` when any value has the wrong type or width, else [].

    Writes run this before defaulting: defaults and the semantic rules assume well-typed input.
    Unknown fields alone are not reported here (`validate` reports them with the other errors).
    """
    if not isinstance(obj, dict):
        return [FieldError("", TYPE_INVALID, f"Invalid value: {_show_typed(obj)}: a {kind} must be a JSON object")]
    if not schema.has_schema(kind):
        return []
    errs, typed = _schema_errors(kind, obj)
    return errs if typed else []


def validate(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[FieldError]:
    """All field errors of `obj` (a whole object of `kind`); `old` is the stored object on update."""
    if not isinstance(obj, dict):
        return [FieldError("", TYPE_INVALID, f"Invalid value: {_show(obj)}: a {kind} must be a JSON object")]
    errs: list[FieldError] = []
    if schema.has_schema(kind):
        errs, typed = _schema_errors(kind, obj)
        if typed:
            return errs
    errs += validate_object_meta(kind, obj)
    validator = _VALIDATORS.get(kind)
    if validator is not None:
        errs += validator(obj)
    if old is not None:
        errs += _validate_meta_update(obj, old)
        update_validator = _UPDATE_VALIDATORS.get(kind)
        if update_validator is not None:
            errs += update_validator(obj, old)
    return errs
