"""Container environment, the way kubelet builds it: ``envFrom``, ``env`` and ``$(VAR)``.

Order (kubelet's ``makeEnvironmentVariables``): every ``envFrom`` source in turn
(ConfigMap or Secret, each key optionally prefixed; keys that are not valid variable
names are skipped), then ``env`` entries in order, later entries overriding earlier
ones. A literal ``value`` is expanded against the variables defined *before* it;
``valueFrom`` values are taken verbatim:

* ``configMapKeyRef`` / ``secretKeyRef``: one key of a ConfigMap / Secret in the pod's
  namespace (Secret values are base64 in the API object). A missing object or key fails
  the container with ``CreateContainerConfigError`` unless ``optional: true``, in which
  case the variable is left out.
* ``fieldRef``: ``metadata.name|namespace|uid``, ``metadata.labels['k']``,
  ``metadata.annotations['k']``, ``spec.nodeName``, ``spec.serviceAccountName``,
  ``status.podIP``, ``status.hostIP`` (and the ``…IPs`` forms).
* ``resourceFieldRef``: ``limits.cpu|memory`` (and ``requests.*``), divided by
  ``divisor`` and rounded up; with no limit set the node's capacity stands in, as in
  Kubernetes.

Finally ``command`` and ``args`` are expanded with the complete environment.
``$(NAME)`` expands to the variable's value when defined and stays as written otherwise;
``$$`` is an escaped ``$``.

Everything is pure except the :class:`ConfigSource` the caller passes in (the agent uses
its API client; tests use :class:`StaticConfigSource`).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.objects.validation import parse_cpu_quantity, parse_memory_quantity

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")


class ConfigError(Exception):
    """A container's configuration cannot be built (reason ``CreateContainerConfigError``)."""

    reason = "CreateContainerConfigError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigSource(Protocol):
    """Reads ConfigMaps and Secrets; ``None`` means "does not exist"."""

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass
class StaticConfigSource:
    """In-memory ConfigMaps/Secrets keyed by (namespace, name)."""

    config_maps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.secrets.get((namespace, name))


class ClientConfigSource:
    """ConfigMaps/Secrets read through the API (node identities may GET them)."""

    def __init__(self, client: Any) -> None:
        from orchestrator.objects.kinds import by_kind

        self.client = client
        self._cm = by_kind("v1", "ConfigMap")
        self._secret = by_kind("v1", "Secret")

    def _get(self, kind: Any, namespace: str, name: str) -> dict[str, Any] | None:
        from orchestrator.errors import ApiError

        try:
            return dict(self.client.get(kind, name, namespace))
        except ApiError as e:
            if e.code == 404:
                return None
            raise ConfigError(f"cannot read {kind.kind} {namespace}/{name}: {e}") from None

    def config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self._cm, namespace, name)

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._get(self._secret, namespace, name)


# -- data of ConfigMaps and Secrets ---------------------------------------------------------


def config_map_data(cm: Mapping[str, Any]) -> dict[str, bytes]:
    """All keys of a ConfigMap as bytes (``data`` as UTF-8, ``binaryData`` base64-decoded)."""
    out: dict[str, bytes] = {}
    for k, v in (cm.get("binaryData") or {}).items():
        out[str(k)] = _b64(v)
    for k, v in (cm.get("data") or {}).items():
        out[str(k)] = str(v).encode()
    return out


def secret_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """All keys of a Secret as bytes (``data`` base64-decoded, ``stringData`` as UTF-8)."""
    out = {str(k): _b64(v) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        out[str(k)] = str(v).encode()
    return out


def _b64(v: Any) -> bytes:
    try:
        return base64.b64decode(str(v), validate=False)
    except (binascii.Error, ValueError):
        return str(v).encode()


# -- $(VAR) expansion -----------------------------------------------------------------------


def expand(s: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names replaced, unknown kept, ``$$`` → ``$``."""
    out: list[str] = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = s[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = s.find(")", i + 2)
            if end < 0:
                out.append(s[i:])
                break
            name = s[i + 2 : end]
            value = lookup(name) if name else None
            out.append(value if value is not None else s[i : end + 1])
            i = end + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# -- field and resource references ----------------------------------------------------------


@dataclass(frozen=True)
class PodFacts:
    """Runtime facts a container's environment may refer to."""

    pod_ip: str = ""
    host_ip: str = ""
    node_cpu: float = 1.0  # cores, stands in for a missing cpu limit
    node_memory: int = 0  # bytes, stands in for a missing memory limit


def field_ref(pod: Mapping[str, Any], path: str, facts: PodFacts) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    m = _LABEL_REF.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount"),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")
    return str(simple[path] or "")


def resource_ref(
    pod: Mapping[str, Any], spec: Mapping[str, Any], ref: Mapping[str, Any], facts: PodFacts
) -> str:
    target = spec
    wanted = ref.get("containerName")
    if wanted:
        pspec = pod.get("spec") or {}
        all_specs = [*(pspec.get("initContainers") or []), *(pspec.get("containers") or [])]
        found = next((c for c in all_specs if c.get("name") == wanted), None)
        if found is None:
            raise ConfigError(f"resourceFieldRef: no container named {wanted!r}")
        target = found
    resource = str(ref.get("resource") or "")
    kind, _, res = resource.partition(".")
    resources = target.get("resources") or {}
    value = (resources.get(kind) or {}).get(res) if kind in ("limits", "requests") else None
    if res == "cpu":
        cores = parse_cpu_quantity(value) if value is not None else (facts.node_cpu if kind == "limits" else 0.0)
        divisor = parse_cpu_quantity(ref.get("divisor") or "1")
        return str(math.ceil(cores / divisor - 1e-9)) if divisor else "0"
    if res in ("memory", "ephemeral-storage"):
        size = parse_memory_quantity(value) if value is not None else (facts.node_memory if kind == "limits" else 0)
        divisor = parse_memory_quantity(ref.get("divisor") or "1")
        return str(math.ceil(size / divisor)) if divisor else "0"
    raise ConfigError(f"unsupported resourceFieldRef resource {resource!r}")


# -- the environment ------------------------------------------------------------------------


def _key_ref(
    source: ConfigSource, namespace: str, ref: Mapping[str, Any], secret: bool, var: str
) -> str | None:
    kind = "secret" if secret else "configmap"
    name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
    optional = bool(ref.get("optional"))
    obj = source.secret(namespace, name) if secret else source.config_map(namespace, name)
    if obj is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{name}" not found (needed by environment variable {var})')
    data = secret_data(obj) if secret else config_map_data(obj)
    if key not in data:
        if optional:
            return None
        label = "Secret" if secret else "ConfigMap"
        raise ConfigError(f"couldn't find key {key} in {label} {namespace}/{name}")
    return data[key].decode(errors="replace")


def resolve_env(
    pod: Mapping[str, Any], spec: Mapping[str, Any], source: ConfigSource, facts: PodFacts,
    service_env: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The container's environment as ordered (name, value) pairs. Raises ConfigError.
    `$(VAR)` in a value expands to a variable defined before it or, as kubelet does, to one
    of the pod's Service variables (`service_env`, which are not added here)."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    env: dict[str, str] = {}
    services = service_env or {}

    def lookup(name: str) -> str | None:
        return env[name] if name in env else services.get(name)

    for src in spec.get("envFrom") or []:
        prefix = str(src.get("prefix") or "")
        for kind, secret in (("configMapRef", False), ("secretRef", True)):
            ref = src.get(kind)
            if not ref:
                continue
            name = str(ref.get("name") or "")
            obj = source.secret(namespace, name) if secret else source.config_map(namespace, name)
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{"secret" if secret else "configmap"} "{name}" not found')
            data = secret_data(obj) if secret else config_map_data(obj)
            for k in sorted(data):
                var = prefix + k
                if _ENV_NAME.match(var):
                    env[var] = data[k].decode(errors="replace")
    for item in spec.get("env") or []:
        name = str(item.get("name") or "")
        vf = item.get("valueFrom")
        if not vf:
            env[name] = expand(str(item.get("value") or ""), lookup)
            continue
        value: str | None
        if vf.get("configMapKeyRef"):
            value = _key_ref(source, namespace, vf["configMapKeyRef"], False, name)
        elif vf.get("secretKeyRef"):
            value = _key_ref(source, namespace, vf["secretKeyRef"], True, name)
        elif vf.get("fieldRef"):
            value = field_ref(pod, str(vf["fieldRef"].get("fieldPath") or ""), facts)
        elif vf.get("resourceFieldRef"):
            value = resource_ref(pod, spec, vf["resourceFieldRef"], facts)
        else:
            raise ConfigError(f"environment variable {name}: empty valueFrom")
        if value is not None:
            env[name] = value
    return list(env.items())


def expand_command(
    spec: Mapping[str, Any], env: list[tuple[str, str]]
) -> tuple[list[str] | None, list[str] | None]:
    """``command`` and ``args`` with ``$(VAR)`` expanded against the final environment."""
    table = dict(env)
    command = [expand(str(x), table.get) for x in spec["command"]] if spec.get("command") else None
    args = [expand(str(x), table.get) for x in spec["args"]] if spec.get("args") else None
    return command, args
