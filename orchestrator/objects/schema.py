"""Known fields and value types of every served kind, for strict field validation.

Kubernetes rejects unknown fields when a request asks for `fieldValidation=Strict`; Dockyard
always does, so a typo such as `imagee` is an error instead of silently dropped data.

The description is declarative and deliberately compact. A schema node is one of:

* a `Scalar` (`STRING`, `INT32`, `INT64`, `BOOLEAN`, `NUMBER`, `INT_OR_STRING`, `QUANTITY`, `ANY`);
* `Struct` — an object whose field names are known (`struct(name=STRING, ...)`);
* `ListOf(node)` — a JSON array of `node`;
* `MapOf(node)` — an object with free keys (labels, data, resource lists) and `node` values.

`KIND_SCHEMAS` maps a kind name to the `Struct` of the whole object; adding a kind is adding
one entry (reusing `OBJECT_META`, `LABEL_SELECTOR`, `POD_TEMPLATE_SPEC`, ...). `null` is
accepted for every field, as the API server treats it as "unset".

Integers have the width Kubernetes gives the field in its Go types: `INT32` (replicas, ports,
probe timings, ... and the integer half of `INT_OR_STRING`) or `INT64` (seconds that may be
long, user and group ids, generations, sizes). A value outside the width is a type problem, as
it is for the API server, which cannot decode it; booleans are never integers, integral floats
(`3.0`, `1e3`) are integers, and NaN or infinite numbers are never accepted. `normalize` turns
integral floats at integer fields into ints, so stored objects read back as Go clients expect.

`check(kind, obj)` walks an object and returns `SchemaProblem`s (unknown field, wrong value
type, integer out of range), `unknown_fields(kind, obj)` returns just the dotted paths of
unknown fields, e.g. `spec.template.spec.containers[0].imagee`.
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
        return bounds[0] <= value <= bounds[1]


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

# --- pods -------------------------------------------------------------------------------------

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

CONTAINER_STATE = struct(
    waiting=struct(reason=STRING, message=STRING),
    running=struct(startedAt=STRING),
    terminated=struct(
        exitCode=INT32,
        signal=INT32,
        reason=STRING,
        message=STRING,
        startedAt=STRING,
        finishedAt=STRING,
        containerID=STRING,
    ),
)

CONTAINER_STATUS = struct(
    name=STRING,
    state=CONTAINER_STATE,
    lastState=CONTAINER_STATE,
    ready=BOOLEAN,
    started=BOOLEAN,
    restartCount=INT32,
    image=STRING,
    imageID=STRING,
    containerID=STRING,
    allocatedResources=RESOURCE_LIST,
    resources=struct(limits=RESOURCE_LIST, requests=RESOURCE_LIST, claims=ListOf(ANY)),
    volumeMounts=ListOf(ANY),
    user=OPAQUE_OBJECT,
    stopSignal=STRING,
)

POD_STATUS = struct(
    phase=STRING,
    conditions=ListOf(CONDITION),
    message=STRING,
    reason=STRING,
    nominatedNodeName=STRING,
    hostIP=STRING,
    hostIPs=ListOf(struct(ip=STRING)),
    podIP=STRING,
    podIPs=ListOf(struct(ip=STRING)),
    startTime=STRING,
    initContainerStatuses=ListOf(CONTAINER_STATUS),
    containerStatuses=ListOf(CONTAINER_STATUS),
    ephemeralContainerStatuses=ListOf(CONTAINER_STATUS),
    qosClass=STRING,
    resize=STRING,
    observedGeneration=INT64,
)

POD_TEMPLATE_SPEC = struct(metadata=OBJECT_META, spec=POD_SPEC)

# --- workloads --------------------------------------------------------------------------------

REPLICA_SET_SPEC = struct(
    replicas=INT32, minReadySeconds=INT32, selector=LABEL_SELECTOR, template=POD_TEMPLATE_SPEC
)
REPLICA_SET_STATUS = struct(
    replicas=INT32,
    fullyLabeledReplicas=INT32,
    readyReplicas=INT32,
    availableReplicas=INT32,
    terminatingReplicas=INT32,
    observedGeneration=INT64,
    conditions=ListOf(CONDITION),
)

DEPLOYMENT_SPEC = struct(
    replicas=INT32,
    selector=LABEL_SELECTOR,
    template=POD_TEMPLATE_SPEC,
    strategy=struct(
        type=STRING,
        rollingUpdate=struct(maxUnavailable=INT_OR_STRING, maxSurge=INT_OR_STRING),
    ),
    minReadySeconds=INT32,
    revisionHistoryLimit=INT32,
    paused=BOOLEAN,
    progressDeadlineSeconds=INT32,
)
DEPLOYMENT_STATUS = struct(
    observedGeneration=INT64,
    replicas=INT32,
    updatedReplicas=INT32,
    readyReplicas=INT32,
    availableReplicas=INT32,
    unavailableReplicas=INT32,
    terminatingReplicas=INT32,
    conditions=ListOf(CONDITION),
    collisionCount=INT32,
)

# --- autoscaling ------------------------------------------------------------------------------

METRIC_IDENTIFIER = struct(name=STRING, selector=LABEL_SELECTOR)
METRIC_TARGET = struct(type=STRING, value=QUANTITY, averageValue=QUANTITY, averageUtilization=INT32)
METRIC_VALUE_STATUS = struct(value=QUANTITY, averageValue=QUANTITY, averageUtilization=INT32)
CROSS_VERSION_OBJECT_REFERENCE = struct(apiVersion=STRING, kind=STRING, name=STRING)
HPA_SCALING_RULES = struct(
    stabilizationWindowSeconds=INT32,
    selectPolicy=STRING,
    policies=ListOf(struct(type=STRING, value=INT32, periodSeconds=INT32)),
    tolerance=QUANTITY,
)
HPA_SPEC = struct(
    scaleTargetRef=CROSS_VERSION_OBJECT_REFERENCE,
    minReplicas=INT32,
    maxReplicas=INT32,
    metrics=ListOf(
        struct(
            type=STRING,
            resource=struct(name=STRING, target=METRIC_TARGET),
            containerResource=struct(name=STRING, container=STRING, target=METRIC_TARGET),
            pods=struct(metric=METRIC_IDENTIFIER, target=METRIC_TARGET),
            object=struct(describedObject=CROSS_VERSION_OBJECT_REFERENCE, metric=METRIC_IDENTIFIER,
                          target=METRIC_TARGET),
            external=struct(metric=METRIC_IDENTIFIER, target=METRIC_TARGET),
        )
    ),
    behavior=struct(scaleUp=HPA_SCALING_RULES, scaleDown=HPA_SCALING_RULES),
)
HPA_STATUS = struct(
    observedGeneration=INT64,
    lastScaleTime=STRING,
    currentReplicas=INT32,
    desiredReplicas=INT32,
    currentMetrics=ListOf(
        struct(
            type=STRING,
            resource=struct(name=STRING, current=METRIC_VALUE_STATUS),
            containerResource=struct(name=STRING, container=STRING, current=METRIC_VALUE_STATUS),
            pods=struct(metric=METRIC_IDENTIFIER, current=METRIC_VALUE_STATUS),
            object=struct(describedObject=CROSS_VERSION_OBJECT_REFERENCE, metric=METRIC_IDENTIFIER,
                          current=METRIC_VALUE_STATUS),
            external=struct(metric=METRIC_IDENTIFIER, current=METRIC_VALUE_STATUS),
        )
    ),
    conditions=ListOf(CONDITION),
)

# --- nodes and namespaces ---------------------------------------------------------------------

TAINT = struct(key=STRING, value=STRING, effect=STRING, timeAdded=STRING)

NODE_SPEC = struct(
    podCIDR=STRING,
    podCIDRs=ListOf(STRING),
    providerID=STRING,
    unschedulable=BOOLEAN,
    taints=ListOf(TAINT),
    configSource=OPAQUE_OBJECT,
    externalID=STRING,
)
NODE_STATUS = struct(
    capacity=RESOURCE_LIST,
    allocatable=RESOURCE_LIST,
    phase=STRING,
    conditions=ListOf(CONDITION),
    addresses=ListOf(struct(type=STRING, address=STRING)),
    daemonEndpoints=struct(kubeletEndpoint=struct(Port=INT32)),
    nodeInfo=struct(
        machineID=STRING,
        systemUUID=STRING,
        bootID=STRING,
        kernelVersion=STRING,
        osImage=STRING,
        containerRuntimeVersion=STRING,
        kubeletVersion=STRING,
        kubeProxyVersion=STRING,
        operatingSystem=STRING,
        architecture=STRING,
        swap=OPAQUE_OBJECT,
    ),
    images=ListOf(struct(names=ListOf(STRING), sizeBytes=INT64)),
    volumesInUse=ListOf(STRING),
    volumesAttached=ListOf(struct(name=STRING, devicePath=STRING)),
    config=OPAQUE_OBJECT,
    runtimeHandlers=ListOf(ANY),
    features=OPAQUE_OBJECT,
)

# --- services ---------------------------------------------------------------------------------

SERVICE_PORT = struct(
    name=STRING, protocol=STRING, appProtocol=STRING, port=INT32, targetPort=INT_OR_STRING, nodePort=INT32
)
SERVICE_SPEC = struct(
    type=STRING,
    selector=MapOf(STRING),
    ports=ListOf(SERVICE_PORT),
    clusterIP=STRING,
    clusterIPs=ListOf(STRING),
    externalIPs=ListOf(STRING),
    externalName=STRING,
    sessionAffinity=STRING,
    sessionAffinityConfig=struct(clientIP=struct(timeoutSeconds=INT32)),
    publishNotReadyAddresses=BOOLEAN,
    externalTrafficPolicy=STRING,
    internalTrafficPolicy=STRING,
    ipFamilies=ListOf(STRING),
    ipFamilyPolicy=STRING,
    loadBalancerIP=STRING,
    loadBalancerSourceRanges=ListOf(STRING),
    allocateLoadBalancerNodePorts=BOOLEAN,
    healthCheckNodePort=INT32,
)
SERVICE_STATUS = struct(
    loadBalancer=struct(ingress=ListOf(struct(ip=STRING, hostname=STRING, ports=ListOf(ANY)))),
    conditions=ListOf(CONDITION),
)
ENDPOINT_ADDRESS = struct(ip=STRING, hostname=STRING, nodeName=STRING, targetRef=OBJECT_REFERENCE)
ENDPOINT_PORT = struct(name=STRING, port=INT32, protocol=STRING, appProtocol=STRING)
ENDPOINT_SUBSET = struct(
    addresses=ListOf(ENDPOINT_ADDRESS), notReadyAddresses=ListOf(ENDPOINT_ADDRESS), ports=ListOf(ENDPOINT_PORT)
)
LEASE_SPEC = struct(
    holderIdentity=STRING,
    leaseDurationSeconds=INT32,
    acquireTime=STRING,
    renewTime=STRING,
    leaseTransitions=INT32,
    strategy=STRING,
    preferredHolder=STRING,
)


# --- whole objects ----------------------------------------------------------------------------

_TOP = struct(apiVersion=STRING, kind=STRING, metadata=OBJECT_META)

KIND_SCHEMAS: dict[str, Struct] = {
    "Namespace": _TOP.extend(
        spec=struct(finalizers=ListOf(STRING)),
        status=struct(phase=STRING, conditions=ListOf(CONDITION)),
    ),
    "Node": _TOP.extend(spec=NODE_SPEC, status=NODE_STATUS),
    "Pod": _TOP.extend(spec=POD_SPEC, status=POD_STATUS),
    "ConfigMap": _TOP.extend(data=MapOf(STRING), binaryData=MapOf(STRING), immutable=BOOLEAN),
    "Secret": _TOP.extend(data=MapOf(STRING), stringData=MapOf(STRING), type=STRING, immutable=BOOLEAN),
    "Event": _TOP.extend(
        involvedObject=OBJECT_REFERENCE,
        reason=STRING,
        message=STRING,
        source=struct(component=STRING, host=STRING),
        firstTimestamp=STRING,
        lastTimestamp=STRING,
        count=INT32,
        type=STRING,
        eventTime=STRING,
        series=struct(count=INT32, lastObservedTime=STRING),
        action=STRING,
        related=OBJECT_REFERENCE,
        reportingComponent=STRING,
        reportingInstance=STRING,
    ),
    "ReplicaSet": _TOP.extend(spec=REPLICA_SET_SPEC, status=REPLICA_SET_STATUS),
    "Deployment": _TOP.extend(spec=DEPLOYMENT_SPEC, status=DEPLOYMENT_STATUS),
    "HorizontalPodAutoscaler": _TOP.extend(spec=HPA_SPEC, status=HPA_STATUS),
    "Service": _TOP.extend(spec=SERVICE_SPEC, status=SERVICE_STATUS),
    "Endpoints": _TOP.extend(subsets=ListOf(ENDPOINT_SUBSET)),
    "Lease": _TOP.extend(spec=LEASE_SPEC),
    # autoscaling/v1 Scale, the body of the `scale` subresource (not a stored kind)
    "Scale": _TOP.extend(spec=struct(replicas=INT32), status=struct(replicas=INT32, selector=STRING)),
}


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


def check(kind: str, obj: Any) -> list[SchemaProblem]:
    """Unknown fields and mistyped values of `obj`, a whole object of `kind`.

    Raises KeyError for a kind without a schema (callers validate the kind first).
    """
    out: list[SchemaProblem] = []
    _walk(KIND_SCHEMAS[kind], obj, "", out)
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


def normalize(kind: str, obj: Any) -> None:
    """Turn integral floats (`3.0`, `1e3`) at the integer fields of `obj` into ints, in place.

    Go clients cannot decode `3.0` into an int32, so an object must never be stored with one.
    """
    _normalize(KIND_SCHEMAS[kind], obj)


def unknown_fields(kind: str, obj: dict[str, Any]) -> list[str]:
    """Dotted paths of fields `kind` does not have, e.g. `spec.containers[0].imagee`."""
    return [p.path for p in check(kind, obj) if p.problem == "unknown"]


def has_schema(kind: str) -> bool:
    return kind in KIND_SCHEMAS
