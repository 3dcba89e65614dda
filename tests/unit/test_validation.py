"""Schema (unknown fields), semantic validation and quantity parsing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from orchestrator.objects.defaults import apply_defaults
from orchestrator.objects.fielderrors import FieldError
from orchestrator.objects.kinds import schema_for
from orchestrator.objects.quantity import parse_cpu_quantity, parse_memory_quantity
from orchestrator.objects.schema import unknown_fields
from orchestrator.objects.validation import validate


def pod(**spec: Any) -> dict:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}], **spec},
    }
    apply_defaults("Pod", obj)
    return obj


def deployment(**spec: Any) -> dict:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox:1.36"}]},
            },
            **spec,
        },
    }
    apply_defaults("Deployment", obj)
    return obj


def edit(obj: dict, path: str, value: Any) -> dict:
    """Copy of obj with a dotted path (list indices as numbers) set; value DELETE removes it."""
    out = copy.deepcopy(obj)
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    cur: Any = out
    for p in parts[:-1]:
        cur = cur[p]
    if value is DELETE:
        del cur[parts[-1]]
    else:
        cur[parts[-1]] = value
    return out


DELETE = object()


def fields(errs: list[FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errs]


# --- quantities -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "q, cores",
    [
        ("100m", 0.1),
        ("0.5", 0.5),
        ("2", 2.0),
        (2, 2.0),
        (0.25, 0.25),
        ("1500m", 1.5),
        ("5e-1", 0.5),
        ("1k", 1000.0),
    ],
)
def test_parse_cpu(q: Any, cores: float) -> None:
    assert parse_cpu_quantity(q) == pytest.approx(cores)


@pytest.mark.parametrize(
    "q, size",
    [
        ("64Mi", 64 * 2**20),
        ("1G", 10**9),
        ("1Gi", 2**30),
        ("128974848", 128974848),
        ("1e3", 1000),
        ("1E", 10**18),
        ("129e6", 129 * 10**6),
        ("123Ki", 123 * 1024),
        ("0.5Ki", 512),
        ("1.5", 2),
        (1024, 1024),
    ],
)
def test_parse_memory(q: Any, size: int) -> None:
    assert parse_memory_quantity(q) == size


@pytest.mark.parametrize("q", ["", "abc", "1e3m", "1.2.3", "10 Mi", "5MB", "1Mii", "m", True, None, [1]])
def test_bad_quantities(q: Any) -> None:
    with pytest.raises(ValueError):
        parse_memory_quantity(q)
    with pytest.raises(ValueError):
        parse_cpu_quantity(q)


# --- schema -----------------------------------------------------------------------------------


def test_unknown_fields_paths() -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    d["spec"]["foo"] = 1
    d["metadata"]["labelz"] = {}
    d["spec"]["template"]["spec"]["affinity"] = {"nodeAffinity": {"anything": True}}
    assert sorted(unknown_fields(schema_for("Deployment"), d)) == [
        "metadata.labelz",
        "spec.foo",
        "spec.template.spec.containers[0].imagee",
    ]
    errs = validate("Deployment", d)
    cause = next(e for e in errs if e.field == "spec.foo").cause()
    assert cause == {
        "reason": "FieldValueInvalid",
        "message": 'unknown field "spec.foo"',
        "field": "spec.foo",
    }


def test_server_managed_metadata_is_known() -> None:
    p = pod()
    p["metadata"].update(
        uid="u",
        resourceVersion="5",
        generation=1,
        creationTimestamp="2024-01-01T00:00:00Z",
        deletionTimestamp=None,
        deletionGracePeriodSeconds=30,
        managedFields=[],
        finalizers=["a/b"],
        generateName="web-",
        selfLink="/x",
        ownerReferences=[
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1", "controller": True}
        ],
    )
    assert validate("Pod", p) == []


@pytest.mark.parametrize(
    "kind, obj",
    [
        (
            "ConfigMap",
            {"metadata": {"name": "c"}, "data": {"a": "b"}, "binaryData": {"c": "AA=="}, "immutable": True},
        ),
        (
            "Secret",
            {"metadata": {"name": "s"}, "data": {"a": "Yg=="}, "stringData": {"c": "d"}, "type": "Opaque"},
        ),
        (
            "Namespace",
            {
                "metadata": {"name": "team-a"},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            },
        ),
        (
            "Node",
            {
                "metadata": {"name": "node-1.lab"},
                "spec": {
                    "podCIDR": "10.42.1.0/24",
                    "podCIDRs": ["10.42.1.0/24"],
                    "unschedulable": True,
                    "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}],
                    "providerID": "dockyard://n1",
                },
                "status": {
                    "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                    "allocatable": {"cpu": "3800m", "memory": "7Gi"},
                    "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                    "nodeInfo": {"kernelVersion": "6.1", "architecture": "amd64"},
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                    "images": [{"names": ["busybox"], "sizeBytes": 100}],
                },
            },
        ),
        (
            "Event",
            {
                "metadata": {"name": "web-1.17", "namespace": "default"},
                "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u"},
                "reason": "Started",
                "message": "m",
                "source": {"component": "agent", "host": "n1"},
                "firstTimestamp": "t",
                "lastTimestamp": "t",
                "count": 2,
                "type": "Normal",
                "reportingComponent": "agent",
                "reportingInstance": "n1",
                "action": "Start",
                "series": {"count": 2, "lastObservedTime": "t"},
                "related": {"kind": "Node", "name": "n1"},
            },
        ),
    ],
)
def test_valid_objects(kind: str, obj: dict) -> None:
    apply_defaults(kind, obj)
    assert validate(kind, obj) == []


LEASE = {"metadata": {"name": "n1", "namespace": "kube-node-lease"},
         "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2026-12-01T01:02:03.456789Z",
                  "acquireTime": "2026-12-01T01:00:00Z", "leaseTransitions": 0}}


@pytest.mark.parametrize(
    ("spec", "errors"),
    [
        ({}, []),
        ({"leaseDurationSeconds": 0}, ["spec.leaseDurationSeconds"]),
        ({"leaseTransitions": -1}, ["spec.leaseTransitions"]),
        ({"renewTime": "yesterday"}, ["spec.renewTime"]),
        ({"acquireTime": "2026-12-01 01:00:00"}, ["spec.acquireTime"]),
        ({"holderIdentity": 7}, ["spec.holderIdentity"]),
        ({"holder": "n1"}, ["spec.holder"]),
    ],
)
def test_lease(spec: dict, errors: list[str]) -> None:
    import copy

    obj = copy.deepcopy(LEASE)
    obj["spec"].update(spec)
    apply_defaults("Lease", obj)
    assert [e.field for e in validate("Lease", obj)] == errors


def test_full_pod_is_valid() -> None:
    p = pod(
        volumes=[
            {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a", "path": "a.conf"}]}},
            {"name": "sec", "secret": {"secretName": "s"}},
            {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
            {
                "name": "proj",
                "projected": {"sources": [{"configMap": {"name": "c"}}, {"secret": {"name": "s"}}]},
            },
        ],
        initContainers=[{"name": "init", "image": "busybox", "command": ["true"]}],
        tolerations=[
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute", "tolerationSeconds": 30}
        ],
        nodeSelector={"disk": "ssd"},
        affinity={"nodeAffinity": {"whatever": 1}},
        hostname="web",
        subdomain="svc",
        serviceAccountName="default",
        automountServiceAccountToken=False,
        priority=0,
        securityContext={"runAsUser": 1000, "fsGroup": 2000},
    )
    c = p["spec"]["containers"][0]
    c.update(
        command=["httpd"],
        args=["-f"],
        workingDir="/",
        ports=[{"name": "http", "containerPort": 8080}],
        env=[
            {"name": "A", "value": "1"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        ],
        envFrom=[{"configMapRef": {"name": "c"}, "prefix": "CFG_"}],
        resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": 1, "memory": "128Mi"}},
        volumeMounts=[
            {"name": "data", "mountPath": "/data"},
            {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
        ],
        livenessProbe={"httpGet": {"path": "/healthz", "port": "http"}},
        readinessProbe={"tcpSocket": {"port": 8080}},
        startupProbe={"exec": {"command": ["true"]}},
        lifecycle={"preStop": {"exec": {"command": ["sleep", "1"]}}},
        securityContext={"capabilities": {"add": ["NET_ADMIN"]}},
        stdin=False,
        stdinOnce=False,
        tty=False,
    )
    apply_defaults("Pod", p)
    assert validate("Pod", p) == []


def test_type_errors_short_circuit() -> None:
    d = deployment()
    d["spec"]["replicas"] = "three"
    d["spec"]["bogus"] = 1
    errs = validate("Deployment", d)
    assert ("spec.replicas", "FieldValueTypeInvalid") in fields(errs)
    assert "must be of type integer" in next(e.message for e in errs if e.field == "spec.replicas")
    assert ("spec.bogus", "FieldValueInvalid") in fields(errs)


@pytest.mark.parametrize(
    "path, value, expected",
    [
        ("metadata.labels", {"app": 3}, ("metadata.labels[app]", "FieldValueTypeInvalid")),
        ("spec.containers", {"name": "x"}, ("spec.containers", "FieldValueTypeInvalid")),
        ("spec.hostNetwork", "yes", ("spec.hostNetwork", "FieldValueTypeInvalid")),
    ],
)
def test_type_errors(path: str, value: Any, expected: tuple[str, str]) -> None:
    assert expected in fields(validate("Pod", edit(pod(), path, value)))


# --- semantic rules -------------------------------------------------------------------------------

POD_CASES: list[tuple[str, Any, str, str, str]] = [
    # (path, value, error field, error type, message fragment)
    ("metadata.name", DELETE, "metadata.name", "FieldValueRequired", "name or generateName"),
    ("metadata.name", "Web_1", "metadata.name", "FieldValueInvalid", "RFC 1123 subdomain"),
    ("metadata.namespace", "Bad NS", "metadata.namespace", "FieldValueInvalid", "RFC 1123 label"),
    ("metadata.labels", {"-bad": "x"}, "metadata.labels", "FieldValueInvalid", "name part"),
    ("metadata.labels", {"ok": "has space"}, "metadata.labels[ok]", "FieldValueInvalid", "valid label"),
    ("metadata.annotations", {"a b": "x"}, "metadata.annotations", "FieldValueInvalid", "name part"),
    ("spec.containers", [], "spec.containers", "FieldValueRequired", "Required value"),
    ("spec.containers.0.name", "Web", "spec.containers[0].name", "FieldValueInvalid", "RFC 1123 label"),
    ("spec.containers.0.image", "", "spec.containers[0].image", "FieldValueRequired", "Required value"),
    (
        "spec.restartPolicy",
        "Sometimes",
        "spec.restartPolicy",
        "FieldValueNotSupported",
        '"Always", "Never", "OnFailure"',
    ),
    ("spec.dnsPolicy", "Weird", "spec.dnsPolicy", "FieldValueNotSupported", "ClusterFirst"),
    (
        "spec.containers.0.imagePullPolicy",
        "Maybe",
        "spec.containers[0].imagePullPolicy",
        "FieldValueNotSupported",
        "IfNotPresent",
    ),
    (
        "spec.containers.0.ports",
        [{"containerPort": 70000}],
        "spec.containers[0].ports[0].containerPort",
        "FieldValueInvalid",
        "between 1 and 65535",
    ),
    (
        "spec.containers.0.ports",
        [{"name": "http"}],
        "spec.containers[0].ports[0].containerPort",
        "FieldValueRequired",
        "Required",
    ),
    (
        "spec.containers.0.ports",
        [{"containerPort": 80, "protocol": "ICMP"}],
        "spec.containers[0].ports[0].protocol",
        "FieldValueNotSupported",
        "TCP",
    ),
    (
        "spec.containers.0.ports",
        [{"containerPort": 80, "name": "HTTP"}],
        "spec.containers[0].ports[0].name",
        "FieldValueInvalid",
        "alpha-numeric",
    ),
    (
        "spec.containers.0.env",
        [{"name": "1BAD", "value": "x"}],
        "spec.containers[0].env[0].name",
        "FieldValueInvalid",
        "environment variable name",
    ),
    (
        "spec.containers.0.env",
        [{"value": "x"}],
        "spec.containers[0].env[0].name",
        "FieldValueRequired",
        "Required",
    ),
    (
        "spec.containers.0.env",
        [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "spec.containers[0].env[0].valueFrom",
        "FieldValueInvalid",
        "`value` is not empty",
    ),
    (
        "spec.containers.0.env",
        [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}],
        "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
        "FieldValueNotSupported",
        "metadata.name",
    ),
    (
        "spec.containers.0.env",
        [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}],
        "spec.containers[0].env[0].valueFrom.secretKeyRef.key",
        "FieldValueRequired",
        "Required",
    ),
    (
        "spec.containers.0.resources",
        {"requests": {"cpu": "lots"}},
        "spec.containers[0].resources.requests[cpu]",
        "FieldValueInvalid",
        "quantities must match",
    ),
    (
        "spec.containers.0.resources",
        {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}},
        "spec.containers[0].resources.requests",
        "FieldValueInvalid",
        "must be less than or equal to memory limit of 1Gi",
    ),
    (
        "spec.containers.0.resources",
        {"requests": {"cpu": "-1"}},
        "spec.containers[0].resources.requests[cpu]",
        "FieldValueInvalid",
        "greater than or equal to 0",
    ),
    (
        "spec.containers.0.resources",
        {"limits": {"gpu": "1"}},
        "spec.containers[0].resources.limits[gpu]",
        "FieldValueInvalid",
        "standard resource",
    ),
    (
        "spec.containers.0.volumeMounts",
        [{"name": "nope", "mountPath": "/x"}],
        "spec.containers[0].volumeMounts[0].name",
        "FieldValueNotFound",
        'Not found: "nope"',
    ),
    (
        "spec.containers.0.volumeMounts",
        [{"name": "nope"}],
        "spec.containers[0].volumeMounts[0].mountPath",
        "FieldValueRequired",
        "Required",
    ),
    (
        "spec.volumes",
        [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}],
        "spec.volumes[1].name",
        "FieldValueDuplicate",
        'Duplicate value: "a"',
    ),
    ("spec.volumes", [{"name": "a"}], "spec.volumes[0]", "FieldValueRequired", "must specify a volume type"),
    (
        "spec.volumes",
        [{"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}}],
        "spec.volumes[0].hostPath",
        "FieldValueForbidden",
        "more than 1 volume type",
    ),
    (
        "spec.volumes",
        [{"name": "a", "secret": {}}],
        "spec.volumes[0].secret.secretName",
        "FieldValueRequired",
        "Required",
    ),
    (
        "spec.volumes",
        [{"name": "a", "configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]}}],
        "spec.volumes[0].configMap.items[0].path",
        "FieldValueInvalid",
        "'..'",
    ),
    (
        "spec.containers.0.livenessProbe",
        {"periodSeconds": 5},
        "spec.containers[0].livenessProbe",
        "FieldValueRequired",
        "handler type",
    ),
    (
        "spec.containers.0.livenessProbe",
        {"exec": {"command": ["x"]}, "tcpSocket": {"port": 80}},
        "spec.containers[0].livenessProbe.tcpSocket",
        "FieldValueForbidden",
        "more than 1 handler type",
    ),
    (
        "spec.containers.0.livenessProbe",
        {"httpGet": {"path": "/"}},
        "spec.containers[0].livenessProbe.httpGet.port",
        "FieldValueRequired",
        "Required",
    ),
    (
        "spec.containers.0.livenessProbe",
        {"tcpSocket": {"port": 80}, "successThreshold": 2},
        "spec.containers[0].livenessProbe.successThreshold",
        "FieldValueInvalid",
        "must be 1",
    ),
    (
        "spec.containers.0.readinessProbe",
        {"tcpSocket": {"port": 80}, "periodSeconds": 0},
        "spec.containers[0].readinessProbe.periodSeconds",
        "FieldValueInvalid",
        "greater than 0",
    ),
    (
        "spec.tolerations",
        [{"key": "k", "operator": "Exists", "value": "v"}],
        "spec.tolerations[0].operator",
        "FieldValueInvalid",
        "value must be empty",
    ),
    (
        "spec.tolerations",
        [{"operator": "Equal", "value": "v"}],
        "spec.tolerations[0].operator",
        "FieldValueInvalid",
        "must be Exists",
    ),
    (
        "spec.tolerations",
        [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}],
        "spec.tolerations[0].effect",
        "FieldValueInvalid",
        "NoExecute",
    ),
    ("spec.nodeSelector", {"disk": "s s d"}, "spec.nodeSelector[disk]", "FieldValueInvalid", "valid label"),
    ("spec.nodeName", "Node_1", "spec.nodeName", "FieldValueInvalid", "RFC 1123 subdomain"),
    (
        "spec.terminationGracePeriodSeconds",
        -1,
        "spec.terminationGracePeriodSeconds",
        "FieldValueInvalid",
        "greater than or equal to 0",
    ),
    ("status.phase", "Sleeping", "status.phase", "FieldValueNotSupported", "Running"),
]


@pytest.mark.parametrize(
    "path, value, field, type_, fragment", POD_CASES, ids=[f"{c[0]}={c[1]!r}"[:60] for c in POD_CASES]
)
def test_pod_rules(path: str, value: Any, field: str, type_: str, fragment: str) -> None:
    errs = validate("Pod", edit(pod(), path, value))
    match = [e for e in errs if e.field == field and e.type == type_]
    assert match, errs
    assert fragment in match[0].message, match[0].message


def test_duplicate_container_names_across_init_and_app() -> None:
    p = pod(initContainers=[{"name": "web", "image": "x"}])
    apply_defaults("Pod", p)
    assert ("spec.containers[0].name", "FieldValueDuplicate") in fields(validate("Pod", p))


def test_generate_name_is_enough() -> None:
    p = edit(pod(), "metadata.name", DELETE)
    p["metadata"]["generateName"] = "web-"
    assert validate("Pod", p) == []


def test_namespace_uses_dns_label_names() -> None:
    assert validate("Namespace", {"metadata": {"name": "a.b"}})[0].field == "metadata.name"
    assert (
        validate("Namespace", {"metadata": {"name": "ok", "namespace": "x"}})[0].type == "FieldValueForbidden"
    )


DEPLOYMENT_CASES: list[tuple[str, Any, str, str, str]] = [
    ("spec.selector", DELETE, "spec.selector", "FieldValueRequired", "Required"),
    ("spec.selector", {}, "spec.selector", "FieldValueInvalid", "empty selector"),
    (
        "spec.selector",
        {"matchLabels": {"app": "db"}},
        "spec.template.metadata.labels",
        "FieldValueInvalid",
        "selector does not match template labels",
    ),
    (
        "spec.selector",
        {"matchExpressions": [{"key": "app", "operator": "Is"}]},
        "spec.selector",
        "FieldValueInvalid",
        "unsupported value",
    ),
    ("spec.replicas", -1, "spec.replicas", "FieldValueInvalid", "greater than or equal to 0"),
    ("spec.strategy", {"type": "BlueGreen"}, "spec.strategy.type", "FieldValueNotSupported", "Recreate"),
    (
        "spec.strategy",
        {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}},
        "spec.strategy.rollingUpdate",
        "FieldValueForbidden",
        "Recreate",
    ),
    (
        "spec.strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
        "spec.strategy.rollingUpdate.maxUnavailable",
        "FieldValueInvalid",
        "may not be 0 when `maxSurge` is 0",
    ),
    (
        "spec.strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x%", "maxUnavailable": 1}},
        "spec.strategy.rollingUpdate.maxSurge",
        "FieldValueInvalid",
        "percent",
    ),
    (
        "spec.strategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "150%"}},
        "spec.strategy.rollingUpdate.maxUnavailable",
        "FieldValueInvalid",
        "100%",
    ),
    (
        "spec.template.spec.restartPolicy",
        "Never",
        "spec.template.spec.restartPolicy",
        "FieldValueNotSupported",
        '"Always"',
    ),
    (
        "spec.template.spec.containers.0.image",
        "",
        "spec.template.spec.containers[0].image",
        "FieldValueRequired",
        "Required",
    ),
    ("spec.template", DELETE, "spec.template", "FieldValueRequired", "Required"),
    (
        "spec.progressDeadlineSeconds",
        5,
        "spec.progressDeadlineSeconds",
        "FieldValueInvalid",
        "minReadySeconds",
    ),
]


@pytest.mark.parametrize(
    "path, value, field, type_, fragment", DEPLOYMENT_CASES, ids=[c[0] + ":" + c[4] for c in DEPLOYMENT_CASES]
)
def test_deployment_rules(path: str, value: Any, field: str, type_: str, fragment: str) -> None:
    d = deployment()
    d["spec"]["minReadySeconds"] = 10
    errs = validate("Deployment", edit(d, path, value))
    match = [e for e in errs if e.field == field and e.type == type_]
    assert match, errs
    assert fragment in match[0].message


def test_valid_deployment_and_replicaset() -> None:
    assert validate("Deployment", deployment()) == []
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
        "status": {"replicas": 3, "readyReplicas": 2, "observedGeneration": 1},
    }
    apply_defaults("ReplicaSet", rs)
    assert validate("ReplicaSet", rs) == []
    bad = edit(rs, "spec.selector", {"matchLabels": {"app": "db"}})
    assert ("spec.template.metadata.labels", "FieldValueInvalid") in fields(validate("ReplicaSet", bad))


# --- updates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, value, ok",
    [
        ("spec.containers.0.image", "busybox:1.37", True),
        ("spec.activeDeadlineSeconds", 30, True),
        ("spec.tolerations", [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}], True),
        ("spec.nodeName", "node-1", True),
        ("metadata.labels", {"app": "other"}, True),
        ("status.phase", "Running", True),
        ("spec.containers.0.ports", [{"containerPort": 80, "protocol": "TCP"}], False),
        ("spec.restartPolicy", "Never", False),
        ("spec.tolerations", [], False),
    ],
)
def test_pod_update_rules(path: str, value: Any, ok: bool) -> None:
    old = pod(tolerations=[{"key": "a", "operator": "Exists"}])
    new = edit(old, path, value)
    errs = validate("Pod", new, old)
    assert (errs == []) is ok, errs
    if not ok and path != "spec.tolerations":
        assert errs[0].field == "spec"
        assert "pod updates may not change fields other than" in errs[0].message
        assert path.replace(".0.", "[0].").split(".0")[0] in errs[0].message


def test_pod_node_name_is_set_once() -> None:
    old = edit(pod(), "spec.nodeName", "node-1")
    errs = validate("Pod", edit(old, "spec.nodeName", "node-2"), old)
    assert fields(errs) == [("spec.nodeName", "FieldValueInvalid")]
    assert "node-1" in errs[0].message


def test_active_deadline_may_only_shrink() -> None:
    old = pod(activeDeadlineSeconds=60)
    assert validate("Pod", edit(old, "spec.activeDeadlineSeconds", 30), old) == []
    assert fields(validate("Pod", edit(old, "spec.activeDeadlineSeconds", 90), old)) == [
        ("spec.activeDeadlineSeconds", "FieldValueInvalid")
    ]


def test_workload_selector_is_immutable() -> None:
    old = deployment()
    new = edit(old, "spec.selector", {"matchLabels": {"app": "web", "v": "2"}})
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    errs = validate("Deployment", new, old)
    assert [(e.field, e.message.endswith("field is immutable")) for e in errs] == [("spec.selector", True)]
    assert validate("Deployment", edit(old, "spec.replicas", 5), old) == []


def test_metadata_name_is_immutable() -> None:
    old = deployment()
    assert fields(validate("Deployment", edit(old, "metadata.name", "other"), old)) == [
        ("metadata.name", "FieldValueInvalid")
    ]


# --- config, events, nodes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, obj, field, fragment",
    [
        ("ConfigMap", {"metadata": {"name": "c"}, "data": {"bad key": "x"}}, "data", "valid config key"),
        ("ConfigMap", {"metadata": {"name": "c"}, "data": {"..a": "x"}}, "data", "'..'"),
        (
            "ConfigMap",
            {"metadata": {"name": "c"}, "data": {"a": "x"}, "binaryData": {"a": "AA=="}},
            "binaryData[a]",
            "duplicate",
        ),
        (
            "ConfigMap",
            {"metadata": {"name": "c"}, "binaryData": {"a": "not base64!"}},
            "binaryData[a]",
            "base64",
        ),
        ("Secret", {"metadata": {"name": "s"}, "data": {"a": "@@@"}}, "data[a]", "base64"),
        ("Secret", {"metadata": {"name": "s"}, "data": {"a": "YWJj"[:3]}}, "data[a]", "base64"),
        (
            "Secret",
            {"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}},
            "data[tls.key]",
            "tls.key",
        ),
        ("Secret", {"metadata": {"name": "s"}, "stringData": {"a/b": "x"}}, "stringData", "valid config key"),
        ("Event", {"metadata": {"name": "e", "namespace": "default"}}, "involvedObject", "Required"),
        (
            "Event",
            {
                "metadata": {"name": "e", "namespace": "default"},
                "involvedObject": {"name": "p", "namespace": "other"},
            },
            "involvedObject.namespace",
            "does not match",
        ),
        (
            "Event",
            {
                "metadata": {"name": "e", "namespace": "default"},
                "involvedObject": {"name": "p"},
                "type": "Info",
            },
            "type",
            "Warning",
        ),
        ("Node", {"metadata": {"name": "Node_1"}}, "metadata.name", "RFC 1123 subdomain"),
        ("Node", {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.0.0"}}, "spec.podCIDR", "CIDR"),
        (
            "Node",
            {"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k"}]}},
            "spec.taints[0].effect",
            "Required",
        ),
        (
            "Node",
            {"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Never"}]}},
            "spec.taints[0].effect",
            "NoSchedule",
        ),
        (
            "Node",
            {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "four"}}},
            "status.capacity[cpu]",
            "quantities",
        ),
    ],
)
def test_other_kind_rules(kind: str, obj: dict, field: str, fragment: str) -> None:
    apply_defaults(kind, obj)
    errs = validate(kind, obj)
    match = [e for e in errs if e.field == field]
    assert match, errs
    assert fragment in match[0].message


def test_secret_values_are_not_echoed() -> None:
    errs = validate("Secret", {"metadata": {"name": "s"}, "data": {"pw": "hunter2!"}})
    assert "hunter2" not in errs[0].message


def test_immutable_config_map_and_secret_type() -> None:
    old = {"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": True}
    assert fields(validate("ConfigMap", {**old, "data": {"a": "2"}}, old)) == [
        ("data", "FieldValueForbidden")
    ]
    assert validate("ConfigMap", copy.deepcopy(old), old) == []
    s_old = {"metadata": {"name": "s"}, "type": "Opaque"}
    assert fields(validate("Secret", {**s_old, "type": "kubernetes.io/basic-auth"}, s_old)) == [
        ("type", "FieldValueInvalid")
    ]


def test_node_pod_cidr_set_once() -> None:
    old = {"metadata": {"name": "n"}, "spec": {}}
    set_ = {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.1.0/24"}}
    assert validate("Node", set_, old) == []
    changed = {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.42.2.0/24"}}
    assert fields(validate("Node", changed, set_)) == [("spec.podCIDR", "FieldValueForbidden")]


# --- integer widths and minimums ------------------------------------------------------------------

# Every integer field with the width of its Go type in Kubernetes' API (k8s.io/api): int64
# for these, int32 for every other integer (and for the integer half of IntOrString).
INT64_FIELDS = {
    ("OBJECT_META", "generation"), ("OBJECT_META", "deletionGracePeriodSeconds"),
    ("CONDITION", "observedGeneration"), ("PROBE", "terminationGracePeriodSeconds"),
    ("SECURITY_CONTEXT", "runAsUser"), ("SECURITY_CONTEXT", "runAsGroup"),
    ("POD_SECURITY_CONTEXT", "runAsUser"), ("POD_SECURITY_CONTEXT", "runAsGroup"),
    ("POD_SECURITY_CONTEXT", "fsGroup"), ("TOLERATION", "tolerationSeconds"),
    ("POD_SPEC", "terminationGracePeriodSeconds"), ("POD_SPEC", "activeDeadlineSeconds"),
    ("POD_STATUS", "observedGeneration"), ("REPLICA_SET_STATUS", "observedGeneration"),
    ("DEPLOYMENT_STATUS", "observedGeneration"), ("HPA_STATUS", "observedGeneration"),
}
INT32_FIELDS = {
    ("KEY_TO_PATH", "mode"), ("GRPC_ACTION", "port"), ("DOWNWARD_API_FILE", "mode"),
    ("PROBE", "initialDelaySeconds"), ("PROBE", "timeoutSeconds"), ("PROBE", "periodSeconds"),
    ("PROBE", "successThreshold"), ("PROBE", "failureThreshold"), ("POD_SPEC", "priority"),
    ("CONTAINER_STATUS", "restartCount"), ("REPLICA_SET_SPEC", "replicas"), ("REPLICA_SET_SPEC", "minReadySeconds"),
    ("REPLICA_SET_STATUS", "replicas"), ("REPLICA_SET_STATUS", "fullyLabeledReplicas"),
    ("REPLICA_SET_STATUS", "readyReplicas"), ("REPLICA_SET_STATUS", "availableReplicas"),
    ("REPLICA_SET_STATUS", "terminatingReplicas"), ("DEPLOYMENT_SPEC", "replicas"),
    ("DEPLOYMENT_SPEC", "minReadySeconds"), ("DEPLOYMENT_SPEC", "revisionHistoryLimit"),
    ("DEPLOYMENT_SPEC", "progressDeadlineSeconds"), ("DEPLOYMENT_STATUS", "replicas"),
    ("DEPLOYMENT_STATUS", "updatedReplicas"), ("DEPLOYMENT_STATUS", "readyReplicas"),
    ("DEPLOYMENT_STATUS", "availableReplicas"), ("DEPLOYMENT_STATUS", "unavailableReplicas"),
    ("DEPLOYMENT_STATUS", "terminatingReplicas"), ("DEPLOYMENT_STATUS", "collisionCount"),
    ("METRIC_TARGET", "averageUtilization"), ("METRIC_VALUE_STATUS", "averageUtilization"),
    ("HPA_SCALING_RULES", "stabilizationWindowSeconds"), ("HPA_SPEC", "minReplicas"), ("HPA_SPEC", "maxReplicas"),
    ("HPA_STATUS", "currentReplicas"), ("HPA_STATUS", "desiredReplicas"), ("SERVICE_PORT", "port"),
    ("SERVICE_PORT", "nodePort"), ("SERVICE_SPEC", "healthCheckNodePort"), ("ENDPOINT_PORT", "port"),
    ("LEASE_SPEC", "leaseDurationSeconds"), ("LEASE_SPEC", "leaseTransitions"),
}


def _integer_leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    from orchestrator.objects import schema

    if isinstance(node, schema.Scalar):
        return [(path, node)] if node.name in ("integer", "integer or string") else []
    if isinstance(node, (schema.ListOf, schema.MapOf)):
        return _integer_leaves(node.item if isinstance(node, schema.ListOf) else node.value, path + "[]")
    return [leaf for name, child in node.fields.items() for leaf in _integer_leaves(child, f"{path}.{name}")]


def _block(name: str) -> Any:
    """A named sub-schema: shared ones in objects/schema.py, a kind's own in its resource module."""
    import importlib

    from orchestrator.objects import schema
    from orchestrator.objects.kinds import KINDS

    homes = [schema] + [importlib.import_module(type(k.strategy).__module__) for k in KINDS]
    found = {id(getattr(m, name)): getattr(m, name) for m in homes if hasattr(m, name)}
    assert len(found) == 1, (name, len(found))
    return next(iter(found.values()))


def test_integer_fields_have_their_kubernetes_width() -> None:
    from orchestrator.objects import schema
    from orchestrator.objects.kinds import KINDS

    for block, name in INT64_FIELDS | INT32_FIELDS:
        expected = "int64" if (block, name) in INT64_FIELDS else "int32"
        assert _block(block).fields[name].format == expected, (block, name)
    assert schema.CONTAINER.fields["ports"].item.fields["containerPort"] == schema.INT32
    assert schema.CONTAINER.fields["ports"].item.fields["hostPort"] == schema.INT32
    assert _block("SERVICE_PORT").fields["targetPort"].format == "int32"
    assert schema.INT_OR_STRING.format == "int32"
    sleep = schema.LIFECYCLE_HANDLER.fields["sleep"]
    assert sleep.fields["seconds"] == schema.INT64
    # and no integer anywhere is left without a width
    kind_schemas = {k.kind: k.schema for k in KINDS} | {"Scale": schema_for("Scale")}
    for kind, struct in kind_schemas.items():
        for path, leaf in _integer_leaves(struct):
            assert leaf.format in ("int32", "int64"), (kind, path)


@pytest.mark.parametrize(
    "kind, path, value, width",
    [
        ("Deployment", "spec.replicas", 2**31, "int32"),
        ("Deployment", "spec.replicas", -(2**31) - 1, "int32"),
        ("Deployment", "spec.replicas", 1e12, "int32"),
        ("Deployment", "spec.strategy.rollingUpdate.maxSurge", 2**31, "int32"),
        ("Deployment", "spec.template.spec.terminationGracePeriodSeconds", 2**63, "int64"),
        ("Pod", "spec.containers.0.ports", [{"containerPort": 2**40}], "int32"),
        ("Pod", "spec.securityContext.supplementalGroups", [2**63], "int64"),
    ],
)
def test_integers_wider_than_their_field_are_type_errors(kind: str, path: str, value: Any, width: str) -> None:
    obj = deployment() if kind == "Deployment" else pod()
    errs = validate(kind, edit(obj, path, value))
    assert [e.type for e in errs] == ["FieldValueTypeInvalid"], errs
    assert f"must be of type {width} (between" in errs[0].message


@pytest.mark.parametrize("value", [True, False, "1", 1.5, float("nan"), float("inf")])
def test_only_integers_are_integers(value: Any) -> None:
    errs = validate("Deployment", edit(deployment(), "spec.replicas", value))
    assert fields(errs) == [("spec.replicas", "FieldValueTypeInvalid")]
    assert "must be of type integer" in errs[0].message


def test_integer_bounds_are_valid() -> None:
    assert validate("Deployment", edit(deployment(), "spec.replicas", 2**31 - 1)) == []
    assert validate("Deployment", edit(deployment(), "spec.replicas", 3.0)) == []
    assert validate("Pod", edit(pod(), "spec.terminationGracePeriodSeconds", 2**63 - 1)) == []


def test_non_finite_numbers_are_type_errors() -> None:
    from orchestrator.objects import schema

    for value in (float("nan"), float("inf")):
        assert not schema.NUMBER.accepts(value) and not schema.QUANTITY.accepts(value)
    p = edit(pod(), "spec.containers.0.resources", {"limits": {"cpu": float("inf")}})
    assert ("spec.containers[0].resources.limits[cpu]", "FieldValueTypeInvalid") in fields(validate("Pod", p))


def test_type_errors_do_not_echo_objects_and_arrays() -> None:
    errs = validate("Deployment", edit(deployment(), "spec.template", ["x" * 1000]))
    assert errs[0].message == 'Invalid value: "array": spec.template must be of type object'


def test_type_errors_returns_nothing_for_well_typed_objects() -> None:
    from orchestrator.objects.validation import type_errors

    assert type_errors("Deployment", edit(deployment(), "spec.bogus", 1)) == []  # unknown only: left to validate
    assert fields(type_errors("Deployment", edit(deployment(), "spec", []))) == [("spec", "FieldValueTypeInvalid")]
    assert fields(type_errors("Deployment", [])) == [("", "FieldValueTypeInvalid")]


def test_normalize_stores_integral_floats_as_ints() -> None:
    from orchestrator.objects.schema import normalize

    d = edit(edit(deployment(), "spec.replicas", 3.0), "spec.strategy.rollingUpdate.maxSurge", 2.0)
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": 1.0}}
    normalize(schema_for("Deployment"), d)
    assert type(d["spec"]["replicas"]) is int and type(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"]) is int
    assert type(d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]) is float  # a quantity


MINIMUM_CASES: list[tuple[str, str, Any, str, str]] = [
    # (kind, path, value, error field, message fragment): Kubernetes' ranges beyond the Go type
    ("Pod", "spec.activeDeadlineSeconds", 2**31, "spec.activeDeadlineSeconds",
     "must be between 1 and 2147483647, inclusive"),
    ("Pod", "spec.activeDeadlineSeconds", 0, "spec.activeDeadlineSeconds", "must be between 1 and 2147483647"),
    ("Pod", "spec.securityContext", {"runAsUser": 2**31}, "spec.securityContext.runAsUser",
     "must be between 0 and 2147483647, inclusive"),
    ("Pod", "spec.securityContext", {"fsGroup": -1}, "spec.securityContext.fsGroup", "must be between 0 and"),
    ("Pod", "spec.securityContext", {"supplementalGroups": [1, 2**31]},
     "spec.securityContext.supplementalGroups[1]", "must be between 0 and 2147483647"),
    ("Pod", "spec.containers.0.securityContext", {"runAsGroup": -1}, "spec.containers[0].securityContext.runAsGroup",
     "must be between 0 and"),
    ("Pod", "spec.containers.0.livenessProbe", {"exec": {"command": ["true"]}, "terminationGracePeriodSeconds": 0},
     "spec.containers[0].livenessProbe.terminationGracePeriodSeconds", "must be greater than 0"),
    ("Pod", "spec.containers.0.lifecycle", {"preStop": {"sleep": {"seconds": -1}}},
     "spec.containers[0].lifecycle.preStop.sleep.seconds", "must be non-negative"),
    ("Pod", "spec.volumes", [{"name": "d", "downwardAPI": {"defaultMode": 0o1000}}],
     "spec.volumes[0].downwardAPI.defaultMode", "between 0 and 0777"),
    ("Pod", "spec.volumes", [{"name": "d", "downwardAPI": {"items": [{"path": "a", "mode": -1}]}}],
     "spec.volumes[0].downwardAPI.items[0].mode", "between 0 and 0777"),
    ("Pod", "spec.volumes", [{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "t", "expirationSeconds": 60}}]}}],
     "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds", "less than 10 minutes"),
    ("Pod", "spec.volumes", [{"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "t", "expirationSeconds": 2**33}}]}}],
     "spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds", "larger than 2^32 seconds"),
    ("Pod", "status", {"containerStatuses": [{"name": "web", "restartCount": -1}]},
     "status.containerStatuses[0].restartCount", "must be greater than or equal to 0"),
]


@pytest.mark.parametrize("kind, path, value, field, fragment", MINIMUM_CASES,
                         ids=[f"{c[1]}={c[2]!r}"[:60] for c in MINIMUM_CASES])
def test_kubernetes_ranges_beyond_the_go_type(kind: str, path: str, value: Any, field: str, fragment: str) -> None:
    errs = validate(kind, edit(pod(), path, value))
    match = [e for e in errs if e.field == field]
    assert match, errs
    assert match[0].type == "FieldValueInvalid" and fragment in match[0].message, match[0].message


def test_service_affinity_timeout_and_health_check_port() -> None:
    svc = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}], "sessionAffinity": "ClientIP",
                                                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}},
                                                "healthCheckNodePort": -1}}
    apply_defaults("Service", svc)
    errs = {e.field: e.message for e in validate("Service", svc)}
    assert "must be greater than 0 and less than 86400" in errs["spec.sessionAffinityConfig.clientIP.timeoutSeconds"]
    assert "must be greater than or equal to 0" in errs["spec.healthCheckNodePort"]
    svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] = 86400
    svc["spec"]["healthCheckNodePort"] = 0
    assert validate("Service", svc) == []


def test_hpa_status_replicas_are_not_negative() -> None:
    hpa = {"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                                                "maxReplicas": 3},
           "status": {"currentReplicas": -1, "desiredReplicas": -2}}
    apply_defaults("HorizontalPodAutoscaler", hpa)
    assert fields(validate("HorizontalPodAutoscaler", hpa)) == [
        ("status.currentReplicas", "FieldValueInvalid"), ("status.desiredReplicas", "FieldValueInvalid")]


def test_rolling_update_counts_may_be_null() -> None:
    d = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": None, "maxUnavailable": 1}})
    d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = None  # validated as given, without defaults
    assert validate("Deployment", d) == []
