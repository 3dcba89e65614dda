"""Field types of objects, for strict field validation: the schema language, the shared
sub-schemas, and the checks.

Kubernetes rejects unknown fields when a request asks for `fieldValidation=Strict`; Dockyard
always does, so a typo such as `imagee` is an error instead of silently dropped data.

The description is declarative and deliberately compact. A schema node is one of:

* a `Scalar` (`STRING`, `INT32`, `INT64`, `BOOLEAN`, `NUMBER`, `INT_OR_STRING`, `QUANTITY`, `ANY`);
* `Struct` — an object whose field names are known (`struct(name=STRING, ...)`);
* `ListOf(node)` — a JSON array of `node`;
* `MapOf(node)` — an object with free keys (labels, data, resource lists) and `node` values.

Where the schemas live: each kind's whole-object `Struct` is `SCHEMA` in the kind's module
under `objects/resources/` (`TOP_LEVEL.extend(spec=..., status=...)`), named by its strategy
(`Strategy.schema`) and found by kind name through the kinds table (`kinds.schema_for`,
`Kind.schema`). This module holds what several kinds share: `OBJECT_META`,
`LABEL_SELECTOR`, object references, conditions, resource lists, and the pod spec with its
containers and volumes (`POD_SPEC`, `POD_TEMPLATE_SPEC`, used by Pods and every workload
template), plus `SCALE`, the body of the `scale` subresource. `null` is accepted for every
field, as the API server treats it as "unset".

Integers have the width Kubernetes gives the field in its Go types: `INT32` (replicas, ports,
probe timings, ... and the integer half of `INT_OR_STRING`) or `INT64` (seconds that may be
long, user and group ids, generations, sizes). A value outside the width is a type problem, as
it is for the API server, which cannot decode it; booleans are never integers, integral floats
(`3.0`, `1e3`) are integers, and NaN or infinite numbers are never accepted. `normalize` turns
integral floats at integer fields into ints, so stored objects read back as Go clients expect.

`check(schema, obj)` walks an object and returns `SchemaProblem`s (unknown field, wrong value
type, integer out of range), `unknown_fields(schema, obj)` returns just the dotted paths of
unknown fields, e.g. `spec.template.spec.containers[0].imagee`. Each takes the whole-object
schema (`None` for a kind without one: nothing to report, nothing to change).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INT32_RANGE = (-(2**31), 2**31 - 1)
INT64_RANGE = (-(2**63), 2**63 - 1)
_RANGES = {"int32": INT32_RANGE, "int64": INT64_RANGE}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_integral(value: Any) -> bool:
    """An int, or a float with an integral value (`3.0`, `1e3`): what JSON may carry for an integer."""
    return _is_int(value) or (isinstance(value, float) and value.is_integer())


@dataclass(frozen=True)
class Scalar:
    """A leaf value; `name` is what error messages call the expected type.

    `format` is the width of an integer (`int32` or `int64`, as in Kubernetes' OpenAPI), for
    `integer` and the integer half of `integer or string`.
    """

    name: str
    format: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether `value` has this type (see `in_range` for the width of integers)."""
        if self.name == "any":
            return True
        if self.name == "string":
            return isinstance(value, str)
        if self.name == "integer":
            return _is_integral(value)
        if self.name == "boolean":
            return isinstance(value, bool)
        if self.name == "number":
            return _is_int(value) or (isinstance(value, float) and math.isfinite(value))
        if self.name == "integer or string":
            return _is_integral(value) or isinstance(value, str)
        if self.name == "quantity":
            return _is_int(value) or isinstance(value, str) or (isinstance(value, float) and math.isfinite(value))
        if self.name == "object":
            return isinstance(value, dict)
        raise AssertionError(f"unknown scalar {self.name}")

    @property
    def bounds(self) -> tuple[int, int] | None:
        """(min, max) of an integer of this width, or None."""
        return _RANGES.get(self.format)

    def in_range(self, value: Any) -> bool:
        """False for an integer (of an accepted type) outside this scalar's width."""
        bounds = self.bounds
        if bounds is None or not _is_integral(value):
            return True
        return bool(bounds[0] <= value <= bounds[1])


STRING = Scalar("string")
INT32 = Scalar("integer", "int32")
INT64 = Scalar("integer", "int64")
BOOLEAN = Scalar("boolean")
NUMBER = Scalar("number")
INT_OR_STRING = Scalar("integer or string", "int32")  # intstr.IntOrString holds an int32
QUANTITY = Scalar("quantity")
ANY = Scalar("any")
OPAQUE_OBJECT = Scalar("object")  # an object whose content is not checked (e.g. affinity)


@dataclass(frozen=True)
class Struct:
    fields: Mapping[str, Node]

    def extend(self, **more: Node) -> Struct:
        return Struct({**self.fields, **more})


@dataclass(frozen=True)
class ListOf:
    item: Node


@dataclass(frozen=True)
class MapOf:
    value: Node


Node = Scalar | Struct | ListOf | MapOf


def struct(**fields: Node) -> Struct:
    return Struct(fields)


# --- shared building blocks -------------------------------------------------------------------

OWNER_REFERENCE = struct(
    apiVersion=STRING, kind=STRING, name=STRING, uid=STRING, controller=BOOLEAN, blockOwnerDeletion=BOOLEAN
)

OBJECT_META = struct(
    name=STRING,
    generateName=STRING,
    namespace=STRING,
    selfLink=STRING,
    uid=STRING,
    resourceVersion=STRING,
    generation=INT64,
    creationTimestamp=STRING,
    deletionTimestamp=STRING,
    deletionGracePeriodSeconds=INT64,
    labels=MapOf(STRING),
    annotations=MapOf(STRING),
    ownerReferences=ListOf(OWNER_REFERENCE),
    finalizers=ListOf(STRING),
    managedFields=ListOf(ANY),
)

LABEL_SELECTOR = struct(
    matchLabels=MapOf(STRING),
    matchExpressions=ListOf(struct(key=STRING, operator=STRING, values=ListOf(STRING))),
)

OBJECT_REFERENCE = struct(
    kind=STRING,
    namespace=STRING,
    name=STRING,
    uid=STRING,
    apiVersion=STRING,
    resourceVersion=STRING,
    fieldPath=STRING,
)

LOCAL_OBJECT_REFERENCE = struct(name=STRING)

KEY_TO_PATH = struct(key=STRING, path=STRING, mode=INT32)

CONDITION = struct(
    type=STRING,
    status=STRING,
    observedGeneration=INT64,
    lastProbeTime=STRING,
    lastHeartbeatTime=STRING,
    lastUpdateTime=STRING,
    lastTransitionTime=STRING,
    reason=STRING,
    message=STRING,
)

RESOURCE_LIST = MapOf(QUANTITY)

# --- containers -------------------------------------------------------------------------------

EXEC_ACTION = struct(command=ListOf(STRING))
HTTP_GET_ACTION = struct(
    path=STRING,
    port=INT_OR_STRING,
    host=STRING,
    scheme=STRING,
    httpHeaders=ListOf(struct(name=STRING, value=STRING)),
)
TCP_SOCKET_ACTION = struct(port=INT_OR_STRING, host=STRING)
GRPC_ACTION = struct(port=INT32, service=STRING)

PROBE = struct(
    exec=EXEC_ACTION,
    httpGet=HTTP_GET_ACTION,
    tcpSocket=TCP_SOCKET_ACTION,
    grpc=GRPC_ACTION,
    initialDelaySeconds=INT32,
    timeoutSeconds=INT32,
    periodSeconds=INT32,
    successThreshold=INT32,
    failureThreshold=INT32,
    terminationGracePeriodSeconds=INT64,
)

LIFECYCLE_HANDLER = struct(
    exec=EXEC_ACTION, httpGet=HTTP_GET_ACTION, tcpSocket=TCP_SOCKET_ACTION, sleep=struct(seconds=INT64)
)

CAPABILITIES = struct(add=ListOf(STRING), drop=ListOf(STRING))
SE_LINUX_OPTIONS = struct(user=STRING, role=STRING, type=STRING, level=STRING)
SECCOMP_PROFILE = struct(type=STRING, localhostProfile=STRING)

SECURITY_CONTEXT = struct(
    capabilities=CAPABILITIES,
    privileged=BOOLEAN,
    seLinuxOptions=SE_LINUX_OPTIONS,
    windowsOptions=OPAQUE_OBJECT,
    runAsUser=INT64,
    runAsGroup=INT64,
    runAsNonRoot=BOOLEAN,
    readOnlyRootFilesystem=BOOLEAN,
    allowPrivilegeEscalation=BOOLEAN,
    procMount=STRING,
    seccompProfile=SECCOMP_PROFILE,
    appArmorProfile=OPAQUE_OBJECT,
)

ENV_VAR_SOURCE = struct(
    configMapKeyRef=struct(name=STRING, key=STRING, optional=BOOLEAN),
    secretKeyRef=struct(name=STRING, key=STRING, optional=BOOLEAN),
    fieldRef=struct(apiVersion=STRING, fieldPath=STRING),
    resourceFieldRef=struct(containerName=STRING, resource=STRING, divisor=QUANTITY),
)

CONTAINER = struct(
    name=STRING,
    image=STRING,
    command=ListOf(STRING),
    args=ListOf(STRING),
    workingDir=STRING,
    ports=ListOf(
        struct(name=STRING, containerPort=INT32, hostPort=INT32, hostIP=STRING, protocol=STRING)
    ),
    env=ListOf(struct(name=STRING, value=STRING, valueFrom=ENV_VAR_SOURCE)),
    envFrom=ListOf(
        struct(
            prefix=STRING,
            configMapRef=struct(name=STRING, optional=BOOLEAN),
            secretRef=struct(name=STRING, optional=BOOLEAN),
        )
    ),
    resources=struct(limits=RESOURCE_LIST, requests=RESOURCE_LIST, claims=ListOf(ANY)),
    resizePolicy=ListOf(struct(resourceName=STRING, restartPolicy=STRING)),
    restartPolicy=STRING,  # init containers only ("Always" makes a sidecar)
    volumeMounts=ListOf(
        struct(
            name=STRING,
            mountPath=STRING,
            subPath=STRING,
            subPathExpr=STRING,
            readOnly=BOOLEAN,
            recursiveReadOnly=STRING,
            mountPropagation=STRING,
        )
    ),
    volumeDevices=ListOf(struct(name=STRING, devicePath=STRING)),
    livenessProbe=PROBE,
    readinessProbe=PROBE,
    startupProbe=PROBE,
    lifecycle=struct(postStart=LIFECYCLE_HANDLER, preStop=LIFECYCLE_HANDLER, stopSignal=STRING),
    terminationMessagePath=STRING,
    terminationMessagePolicy=STRING,
    imagePullPolicy=STRING,
    securityContext=SECURITY_CONTEXT,
    stdin=BOOLEAN,
    stdinOnce=BOOLEAN,
    tty=BOOLEAN,
)

# --- volumes ----------------------------------------------------------------------------------

CONFIG_MAP_PROJECTION = struct(name=STRING, items=ListOf(KEY_TO_PATH), optional=BOOLEAN)
SECRET_PROJECTION = struct(name=STRING, items=ListOf(KEY_TO_PATH), optional=BOOLEAN)
DOWNWARD_API_FILE = struct(
    path=STRING,
    fieldRef=struct(apiVersion=STRING, fieldPath=STRING),
    resourceFieldRef=struct(containerName=STRING, resource=STRING, divisor=QUANTITY),
    mode=INT32,
)

VOLUME = struct(
    name=STRING,
    emptyDir=struct(medium=STRING, sizeLimit=QUANTITY),
    hostPath=struct(path=STRING, type=STRING),
    configMap=struct(name=STRING, items=ListOf(KEY_TO_PATH), defaultMode=INT32, optional=BOOLEAN),
    secret=struct(secretName=STRING, items=ListOf(KEY_TO_PATH), defaultMode=INT32, optional=BOOLEAN),
    downwardAPI=struct(items=ListOf(DOWNWARD_API_FILE), defaultMode=INT32),
    projected=struct(
        defaultMode=INT32,
        sources=ListOf(
            struct(
                configMap=CONFIG_MAP_PROJECTION,
                secret=SECRET_PROJECTION,
                downwardAPI=struct(items=ListOf(DOWNWARD_API_FILE)),
                serviceAccountToken=struct(audience=STRING, expirationSeconds=INT64, path=STRING),
            )
        ),
    ),
)

# The volume sources Dockyard understands (used by validation's "exactly one source" rule).
VOLUME_SOURCES: tuple[str, ...] = tuple(f for f in VOLUME.fields if f != "name")

# --- pod specs --------------------------------------------------------------------------------

POD_SECURITY_CONTEXT = struct(
    seLinuxOptions=SE_LINUX_OPTIONS,
    windowsOptions=OPAQUE_OBJECT,
    runAsUser=INT64,
    runAsGroup=INT64,
    runAsNonRoot=BOOLEAN,
    supplementalGroups=ListOf(INT64),
    supplementalGroupsPolicy=STRING,
    fsGroup=INT64,
    fsGroupChangePolicy=STRING,
    sysctls=ListOf(struct(name=STRING, value=STRING)),
    seccompProfile=SECCOMP_PROFILE,
    appArmorProfile=OPAQUE_OBJECT,
    seLinuxChangePolicy=STRING,
)

TOLERATION = struct(key=STRING, operator=STRING, value=STRING, effect=STRING, tolerationSeconds=INT64)

POD_SPEC = struct(
    volumes=ListOf(VOLUME),
    initContainers=ListOf(CONTAINER),
    containers=ListOf(CONTAINER),
    restartPolicy=STRING,
    terminationGracePeriodSeconds=INT64,
    activeDeadlineSeconds=INT64,
    dnsPolicy=STRING,
    dnsConfig=struct(
        nameservers=ListOf(STRING),
        searches=ListOf(STRING),
        options=ListOf(struct(name=STRING, value=STRING)),
    ),
    nodeSelector=MapOf(STRING),
    serviceAccountName=STRING,
    serviceAccount=STRING,
    automountServiceAccountToken=BOOLEAN,
    nodeName=STRING,
    hostNetwork=BOOLEAN,
    hostPID=BOOLEAN,
    hostIPC=BOOLEAN,
    hostUsers=BOOLEAN,
    shareProcessNamespace=BOOLEAN,
    securityContext=POD_SECURITY_CONTEXT,
    imagePullSecrets=ListOf(LOCAL_OBJECT_REFERENCE),
    hostname=STRING,
    subdomain=STRING,
    setHostnameAsFQDN=BOOLEAN,
    affinity=OPAQUE_OBJECT,
    schedulerName=STRING,
    tolerations=ListOf(TOLERATION),
    hostAliases=ListOf(struct(ip=STRING, hostnames=ListOf(STRING))),
    priorityClassName=STRING,
    priority=INT32,
    preemptionPolicy=STRING,
    readinessGates=ListOf(struct(conditionType=STRING)),
    runtimeClassName=STRING,
    enableServiceLinks=BOOLEAN,
    overhead=RESOURCE_LIST,
    topologySpreadConstraints=ListOf(OPAQUE_OBJECT),
    os=struct(name=STRING),
)

POD_TEMPLATE_SPEC = struct(metadata=OBJECT_META, spec=POD_SPEC)


# --- whole objects ----------------------------------------------------------------------------

TOP_LEVEL = struct(apiVersion=STRING, kind=STRING, metadata=OBJECT_META)
"""The fields every object has; a kind's schema extends it with its own."""

# autoscaling/v1 Scale, the body of the `scale` subresource (not a stored kind)
SCALE = TOP_LEVEL.extend(spec=struct(replicas=INT32), status=struct(replicas=INT32, selector=STRING))


# --- checking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaProblem:
    path: str
    problem: str  # "unknown" | "type" | "range" (an integer wider than its field)
    expected: str = ""  # the expected type ("integer", "int32", "object", ...), for "type" and "range"
    value: Any = None


def _type_name(node: Node) -> str:
    if isinstance(node, Scalar):
        return node.name
    if isinstance(node, ListOf):
        return "array"
    return "object"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(node: Node, value: Any, path: str, out: list[SchemaProblem]) -> None:
    if value is None:
        return
    if isinstance(node, Scalar):
        if not node.accepts(value):
            out.append(SchemaProblem(path, "type", node.name, value))
        elif not node.in_range(value):
            out.append(SchemaProblem(path, "range", node.format, value))
        return
    if isinstance(node, ListOf):
        if not isinstance(value, list):
            out.append(SchemaProblem(path, "type", "array", value))
            return
        for i, item in enumerate(value):
            _walk(node.item, item, f"{path}[{i}]", out)
        return
    if not isinstance(value, dict):
        out.append(SchemaProblem(path, "type", _type_name(node), value))
        return
    if isinstance(node, MapOf):
        for key, item in value.items():
            _walk(node.value, item, f"{path}[{key}]", out)
        return
    for key, item in value.items():
        child = node.fields.get(key)
        if child is None:
            out.append(SchemaProblem(_join(path, str(key)), "unknown"))
        else:
            _walk(child, item, _join(path, key), out)


def check(schema: Struct | None, obj: Any) -> list[SchemaProblem]:
    """Unknown fields and mistyped values of `obj`, a whole object of the kind whose schema
    is `schema` (nothing for None)."""
    out: list[SchemaProblem] = []
    if schema is not None:
        _walk(schema, obj, "", out)
    return out


def _normalize(node: Node, value: Any) -> Any:
    if isinstance(node, Scalar):
        if node.format and isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if isinstance(node, ListOf):
        if isinstance(value, list):
            for i, item in enumerate(value):
                value[i] = _normalize(node.item, item)
        return value
    if not isinstance(value, dict):
        return value
    for key, item in value.items():
        child = node.value if isinstance(node, MapOf) else node.fields.get(key)
        if child is not None and item is not None:
            value[key] = _normalize(child, item)
    return value


def normalize(schema: Struct | None, obj: Any) -> None:
    """Turn integral floats (`3.0`, `1e3`) at the integer fields of `obj` into ints, in place.

    Go clients cannot decode `3.0` into an int32, so an object must never be stored with one.
    """
    if schema is not None:
        _normalize(schema, obj)


def unknown_fields(schema: Struct | None, obj: dict[str, Any]) -> list[str]:
    """Dotted paths of fields the schema does not have, e.g. `spec.containers[0].imagee`."""
    return [p.path for p in check(schema, obj) if p.problem == "unknown"]
