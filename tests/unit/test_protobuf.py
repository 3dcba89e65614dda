"""Kubernetes protobuf bodies: decoding what kubectl sends, encoding answers, refusing garbage.

The fixtures under tests/fixtures/protobuf/ are bodies kubectl 1.32 sent (see its
README and capture.py), each with the JSON kubectl prints for the same command
(`--dry-run=client -o json`): the decoder must give exactly that JSON, and encoding the
decoded dict must give back the very bytes kubectl sent.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from orchestrator.api import protobuf, protoschema
from orchestrator.api.app import ApiServer
from orchestrator.api.auth import Authenticator
from orchestrator.api.requests import (
    OBJECT_MEDIA_TYPES,
    PROTOBUF,
    decode_body,
    protobuf_only,
    protobuf_response,
)
from orchestrator.errors import ApiError
from orchestrator.objects.kinds import SERVED
from orchestrator.pki import node_token
from orchestrator.registry import Registry
from orchestrator.store import SQLiteStore

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "protobuf"
CAPTURED = sorted(p.stem for p in FIXTURES.glob("*.pb"))
ADMIN = "admin-token-0123456789"
H = {"Authorization": f"Bearer {ADMIN}"}


def request_line(name: str) -> tuple[str, str]:
    method, path = (FIXTURES / f"{name}.txt").read_text().splitlines()[0].split(" ")
    return method, path


# -- the wire format, written by hand --------------------------------------------------------


def varint(n: int) -> bytes:
    n %= 2**64
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def vi(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    tm = ld(1, api_version.encode()) + ld(2, kind.encode())
    return b"k8s\x00" + ld(1, tm) + ld(2, raw) + ld(3, encoding.encode()) + ld(4, b"")


def configmap(meta: bytes, extra: bytes = b"") -> bytes:
    return envelope("v1", "ConfigMap", ld(1, meta) + extra)


# -- captured kubectl bodies -----------------------------------------------------------------


def test_fixtures_were_captured() -> None:
    assert {"create-namespace", "create-deployment", "create-configmap", "create-secret", "autoscale",
            "drain-delete"} <= set(CAPTURED)
    for name in CAPTURED:
        assert "application/vnd.kubernetes.protobuf" in (FIXTURES / f"{name}.txt").read_text()


@pytest.mark.parametrize("name", [n for n in CAPTURED if (FIXTURES / f"{n}.json").exists()])
def test_captured_body_decodes_to_the_json_kubectl_sends(name: str) -> None:
    body = (FIXTURES / f"{name}.pb").read_bytes()
    assert protobuf.decode(body) == json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize("name", CAPTURED)
def test_captured_body_reencodes_byte_for_byte(name: str) -> None:
    body = (FIXTURES / f"{name}.pb").read_bytes()
    assert protobuf.encode(protobuf.decode(body)) == body


def test_captured_bodies_by_hand() -> None:
    """The JSON shape, spelled out: pointers keep a zero that was sent, bytes are base64,
    a zero Time is null, non-pointer structs are present, empty strings are left out."""
    zero = protobuf.decode((FIXTURES / "create-deployment-zero.pb").read_bytes())
    assert zero == {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "idle", "namespace": "default", "creationTimestamp": None, "labels": {"app": "idle"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "idle"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "idle"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}],
                                         "resources": {}}]},
            },
            "strategy": {},
        },
        "status": {},
    }
    secret = protobuf.decode((FIXTURES / "create-secret.pb").read_bytes())
    assert secret == {"kind": "Secret", "apiVersion": "v1",
                      "metadata": {"name": "s", "namespace": "default", "creationTimestamp": None},
                      "data": {"k": base64.b64encode(b"v").decode()}}
    assert protobuf.decode((FIXTURES / "drain-delete.pb").read_bytes()) == {"kind": "DeleteOptions",
                                                                           "apiVersion": "v1"}
    hpa = protobuf.decode((FIXTURES / "autoscale.pb").read_bytes())
    assert hpa["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                           "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 80}


def test_drain_sends_its_eviction_as_json() -> None:
    """kubectl 1.32 posts the Eviction of `drain` as JSON (only its DELETE is protobuf)."""
    assert "application/json" in (FIXTURES / "drain-eviction.txt").read_text()
    assert json.loads((FIXTURES / "drain-eviction.body.json").read_text())["kind"] == "Eviction"


# -- the tables ------------------------------------------------------------------------------


def test_every_served_kind_and_its_list_has_a_table() -> None:
    for k in SERVED:  # in every version served (autoscaling/v1 HorizontalPodAutoscalers too)
        for kind in (k.kind, k.list_kind):
            assert protobuf.message_for(k.api_version, kind), (
                f"{k.api_version} {kind} has no protobuf table: add it to ROOTS in "
                "tests/fixtures/protobuf/genschema.py and write orchestrator/api/protoschema.py again")
    for api_version, kind in (("v1", "Status"), ("apps/v1", "DeleteOptions"), ("policy/v1", "Eviction"),
                              ("autoscaling/v1", "Scale"), ("v1", "Binding")):
        assert protobuf.message_for(api_version, kind)


def test_tables_are_closed_and_well_formed() -> None:
    scalars = {"string", "bytes", "bool", "int32", "int64"}
    for name, fields in protoschema.MESSAGES.items():
        numbers = [f[0] for f in fields]
        assert numbers == sorted(set(numbers)), name
        for number, json_name, type_name, flags in fields:
            assert set(flags) <= set("rmpoi"), (name, number)
            assert type_name in scalars or type_name in protoschema.MESSAGES, (name, type_name)
            assert bool(json_name) != ("i" in flags) or name in protobuf.SPECIAL, (name, number)
    assert protoschema.MESSAGES["meta.v1.ObjectMeta"][0] == (1, "name", "string", "o")
    assert (2, "data", "bytes", "mo") in protoschema.MESSAGES["core.v1.Secret"]
    assert (1, "replicas", "int32", "po") in protoschema.MESSAGES["apps.v1.DeploymentSpec"]


# -- round trips of rich objects -------------------------------------------------------------


def example(message: str, seed: int = 0, depth: int = 0) -> Any:
    """A value of `message` with every field set (non-zero), as its JSON form."""
    special = {
        "meta.v1.Time": "2024-05-06T07:08:09Z",
        "meta.v1.MicroTime": "2024-05-06T07:08:09.123456Z",
        "resource.Quantity": "250m" if seed % 2 else "2Gi",
        "intstr.IntOrString": "http" if seed % 2 else 8080,
        "meta.v1.FieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}},
        "runtime.RawExtension": {"a": [1, "b"]},
    }
    if message in special:
        return special[message]
    out: dict[str, Any] = {}
    for number, json_name, type_name, flags in protoschema.MESSAGES[message]:
        if "i" in flags:
            out.update(example(type_name, seed + number, depth + 1))
            continue

        def one(i: int, type_name: str = type_name, json_name: str = json_name, number: int = number) -> Any:
            if type_name == "string":
                return f"{json_name}-{i}"
            if type_name == "bytes":
                return base64.b64encode(f"bytes\x00{i}".encode()).decode()
            if type_name == "bool":
                return True
            if type_name == "int32":
                return -(number + i) if number % 3 == 0 else number + i + 1
            if type_name == "int64":
                return 2**40 + number + i if number % 2 else -(2**40) - i
            return example(type_name, seed + number + i, depth + 1)

        if "m" in flags:
            out[json_name] = {f"key-{i}": one(i) for i in range(2)}
        elif "r" in flags:
            out[json_name] = [one(i) for i in range(2)]
        else:
            out[json_name] = one(seed)
    return out


def every_table_kind() -> Iterator[tuple[str, str, str]]:
    for (api_version, kind), message in protoschema.KINDS.items():
        yield api_version, kind, message
    for kind, message in protoschema.ANY_VERSION.items():
        yield "v1", kind, message


@pytest.mark.parametrize(("api_version", "kind", "message"), list(every_table_kind()),
                         ids=[f"{a}/{k}" for a, k, _ in every_table_kind()])
def test_every_field_of_every_kind_round_trips(api_version: str, kind: str, message: str) -> None:
    obj = {"kind": kind, "apiVersion": api_version, **example(message)}
    body = protobuf.encode(obj)
    assert body.startswith(b"k8s\x00")
    assert protobuf.decode(body) == obj
    assert protobuf.encode(protobuf.decode(body)) == body


RICH: list[dict[str, Any]] = [
    {"kind": "Pod", "apiVersion": "v1",
     "metadata": {"name": "web-1", "namespace": "shop", "uid": "0b5c", "resourceVersion": "42", "generation": 3,
                  "creationTimestamp": "2024-01-02T03:04:05Z", "deletionTimestamp": "2024-01-02T03:05:05Z",
                  "deletionGracePeriodSeconds": 0, "labels": {"app": "web", "tier": "front"},
                  "annotations": {"note": "ünïcode ✓"}, "finalizers": ["foregroundDeletion"],
                  "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                       "uid": "u1", "controller": True, "blockOwnerDeletion": True}],
                  "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                                     "time": "2024-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                                     "fieldsV1": {"f:spec": {"f:containers": {}}}}]},
     "spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c", "defaultMode": 420,
                                                        "items": [{"key": "a", "path": "a.txt"}]}},
                          {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                          {"name": "tok", "secret": {"secretName": "s", "optional": False}}],
              "containers": [{"name": "web", "image": "nginx:1.27", "command": ["nginx"], "args": ["-g", "x"],
                              "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                              "env": [{"name": "A", "value": "1"},
                                      {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                      {"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                              "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                                            "requests": {"cpu": "100m"}},
                              "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                              "livenessProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 3},
                              "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True}],
                              "securityContext": {"runAsUser": 0, "privileged": False}}],
              "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "nodeName": "n1",
              "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                               "tolerationSeconds": -1}],
              "securityContext": {"supplementalGroups": [1000, 2000]}},
     "status": {"phase": "Running", "podIP": "10.0.0.5", "startTime": "2024-01-02T03:04:06Z",
                "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": None,
                                "lastTransitionTime": "2024-01-02T03:04:07Z"}],
                "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0, "image": "nginx:1.27",
                                       "imageID": "", "started": True,
                                       "state": {"running": {"startedAt": "2024-01-02T03:04:06Z"}},
                                       "lastState": {}}]}},
    {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web", "creationTimestamp": None},
     "spec": {"selector": {"app": "web"}, "type": "NodePort", "clusterIP": "10.96.0.10",
              "ports": [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                        {"port": 443, "targetPort": "https"}]},
     "status": {"loadBalancer": {}}},
    {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
     "metadata": {"name": "n1", "namespace": "kube-node-lease", "creationTimestamp": None},
     "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": "2024-01-02T03:04:05.678901Z"}},
    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "pods \"x\" not found",
     "reason": "NotFound", "details": {"name": "x", "kind": "pods"}, "code": 404},
    {"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"},
     "items": [{"metadata": {"name": "default", "creationTimestamp": None}, "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}}]},
]


@pytest.mark.parametrize("obj", RICH, ids=[o["kind"] for o in RICH])
def test_rich_objects_round_trip(obj: dict[str, Any]) -> None:
    assert protobuf.decode(protobuf.encode(obj)) == obj


def test_zero_values_follow_go_json() -> None:
    """Empty strings of omitempty fields are dropped; ints stay negative; times normalise to UTC."""
    obj = {"kind": "ConfigMap", "apiVersion": "v1",
           "metadata": {"name": "c", "namespace": "", "generateName": "", "creationTimestamp": "2024-01-02T04:04:05+01:00",
                        "labels": {}}, "data": {"": ""}}
    assert protobuf.decode(protobuf.encode(obj)) == {
        "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"name": "c", "creationTimestamp": "2024-01-02T03:04:05Z"}, "data": {"": ""}}


def test_keys_without_a_field_are_not_written() -> None:
    obj = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c", "creationTimestamp": None},
           "data": {"a": "b"}, "bogus": 1}
    assert protobuf.decode(protobuf.encode(obj)) == {k: v for k, v in obj.items() if k != "bogus"}


@pytest.mark.parametrize("obj", [
    {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "rows": []},
    {"kind": "APIResourceList", "apiVersion": "v1"},
    {"apiVersion": "v1"},
    {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": 5}},
    {"kind": "ConfigMap", "apiVersion": "v1", "data": ["a"]},
    {"kind": "Pod", "apiVersion": "v1", "spec": {"containers": [{"ports": [{"containerPort": 2**40}]}]}},
    {"kind": "Pod", "apiVersion": "v1", "metadata": {"creationTimestamp": "yesterday"}},
    {"kind": "Secret", "apiVersion": "v1", "data": {"k": "not base64!"}},
    {"kind": "Service", "apiVersion": "v1", "spec": {"ports": [{"targetPort": True}]}},
], ids=["table", "discovery", "no-kind", "string-field", "map-field", "int32-range", "time", "base64", "intorstr"])
def test_what_cannot_be_written_is_said(obj: dict[str, Any]) -> None:
    with pytest.raises(protobuf.NotEncodable):
        protobuf.encode_response(obj)


# -- unknown fields --------------------------------------------------------------------------


def test_unknown_field_numbers_are_skipped() -> None:
    meta = ld(1, b"c") + vi(99, 7) + ld(100, b"whatever") + key(101, 1) + b"\x00" * 8 + key(102, 5) + b"\x00" * 4
    group = key(103, 3) + vi(1, 5) + key(2, 3) + ld(1, b"x") + key(2, 4) + key(103, 4)
    body = configmap(meta + group, ld(2, ld(1, b"a") + ld(2, b"b")) + vi(50, 1) + group)
    assert protobuf.decode(body) == {"kind": "ConfigMap", "apiVersion": "v1",
                                     "metadata": {"name": "c", "creationTimestamp": None}, "data": {"a": "b"}}


def test_protobuf_merges_repeated_messages_and_takes_the_last_scalar() -> None:
    body = configmap(ld(1, b"first") + ld(11, ld(1, b"a") + ld(2, b"1")),
                     ld(1, ld(1, b"second")) + vi(4, 0) + vi(4, 1))
    assert protobuf.decode(body)["metadata"] == {"name": "second", "creationTimestamp": None, "labels": {"a": "1"}}
    assert protobuf.decode(body)["immutable"] is True


def test_packed_repeated_varints_are_read() -> None:
    psc = ld(4, varint(1000) + varint(2000))  # PodSecurityContext.supplementalGroups, packed
    body = envelope("v1", "Pod", ld(1, b"") + ld(2, ld(14, psc)))
    assert protobuf.decode(body)["spec"]["securityContext"] == {"supplementalGroups": [1000, 2000]}


def test_negative_int32_sign_extended_as_go_writes_it() -> None:
    toleration = ld(22, vi(5, -1))  # PodSpec.tolerations[].tolerationSeconds (int64)
    port = ld(6, vi(3, -5))  # Container.ports[].containerPort (int32, 10-byte varint)
    body = envelope("v1", "Pod", ld(2, toleration + ld(2, ld(1, b"c") + port)))
    spec = protobuf.decode(body)["spec"]
    assert spec["tolerations"] == [{"tolerationSeconds": -1}]
    assert spec["containers"][0]["ports"] == [{"containerPort": -5}]


# -- malformed bodies: 400 naming what is wrong ----------------------------------------------

DEEP_GROUPS = b"".join(key(200, 3) for _ in range(300)) + b"".join(key(200, 4) for _ in range(300))

MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "k8s\\x00"),
    ("json", b'{"kind": "ConfigMap"}', "k8s\\x00"),
    ("magic-only", b"k8s\x00", "names no kind"),
    ("truncated-key", b"k8s\x00\x8a", "truncated varint"),
    ("truncated-length", b"k8s\x00\x0a", "truncated varint"),
    ("length-past-end", b"k8s\x00\x0a\x05\x0a", "runs past the end"),
    ("huge-length", b"k8s\x00\x12" + varint(2**62), "runs past the end"),
    ("varint-too-long", b"k8s\x00\x08" + b"\xff" * 11, "longer than 10 bytes"),
    ("varint-overflow", b"k8s\x00\x08" + b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
    ("field-zero", b"k8s\x00\x02\x00", "invalid field number 0"),
    ("wire-type-6", b"k8s\x00" + key(9, 6), "illegal wire type 6"),
    ("wire-type-7", b"k8s\x00" + key(9, 7), "illegal wire type 7"),
    ("lone-end-group", b"k8s\x00" + key(9, 4), "end-group without a start-group"),
    ("open-group", b"k8s\x00" + key(9, 3) + vi(1, 1), "no end-group"),
    ("crossed-group", b"k8s\x00" + key(9, 3) + key(8, 4), "end-group of field 8"),
    ("deep-groups", b"k8s\x00" + DEEP_GROUPS, "nested more than 100"),
    ("truncated-fixed64", b"k8s\x00" + key(9, 1) + b"\x00\x00", "truncated fixed64"),
    ("typemeta-as-varint", b"k8s\x00" + vi(1, 1), "runtime.Unknown field 1: wire type varint"),
    ("kind-as-varint", b"k8s\x00" + ld(1, vi(2, 1)), "runtime.TypeMeta field 2"),
    ("unknown-kind", envelope("batch/v1", "Job", b""), 'no kind "Job" is registered for version "batch/v1"'),
    ("gzip", envelope("v1", "ConfigMap", b"", "gzip"), "content encoding 'gzip'"),
    ("name-as-varint", configmap(vi(1, 3)), "meta.v1.ObjectMeta field 1 (name): wire type varint"),
    ("metadata-as-varint", envelope("v1", "ConfigMap", vi(1, 3)), "core.v1.ConfigMap field 1 (metadata)"),
    ("bool-as-bytes", envelope("v1", "ConfigMap", ld(4, b"\x01")), "field 4 (immutable): wire type length"),
    ("inner-truncated", envelope("v1", "ConfigMap", ld(1, b"\x0a\x09abc")), "runs past the end"),
    ("map-entry-varint", configmap(vi(11, 1)), "field 11 (labels)"),
    ("map-key-varint", configmap(ld(11, vi(1, 1))), "key: wire type varint"),
    ("intorstring-type", envelope("v1", "Service", ld(2, ld(1, ld(4, vi(1, 7))))), "impossible type 7"),
    ("time-range", configmap(ld(8, vi(1, 2**62))), "out of range"),
    ("microtime-nanos", envelope("coordination.k8s.io/v1", "Lease", ld(2, ld(4, vi(1, 5) + vi(2, -1)))),
     "nanos -1 out of range"),
    ("quantity-as-varint", envelope("v1", "Pod", ld(2, ld(2, ld(1, b"c") + ld(8, ld(1, ld(1, b"cpu") + ld(2, vi(1, 5))))))),
     "resource.Quantity field 1: wire type varint"),
    ("time-as-bytes", configmap(ld(8, ld(1, b"x"))), "meta.v1.Time field 1: wire type length-delimited"),
    ("fieldsv1-not-json", configmap(ld(17, ld(7, ld(1, b"{nope")))), "FieldsV1 does not hold JSON"),
    ("fieldsv1-deep", configmap(ld(17, ld(7, ld(1, b"[" * 150 + b"]" * 150)))), "nested more than 100"),
    ("fieldsv1-very-deep", configmap(ld(17, ld(7, ld(1, b"[" * 100_000 + b"]" * 100_000)))), "FieldsV1"),
]


@pytest.mark.parametrize(("body", "why"), [(b, w) for _, b, w in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_bodies_are_400_naming_the_fault(body: bytes, why: str) -> None:
    with pytest.raises(ApiError) as e:
        decode_body(body, PROTOBUF)
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert "not a valid Kubernetes protobuf message" in e.value.message
    assert why in e.value.message


def test_small_bodies_cannot_unfold_into_huge_ones() -> None:
    """Zero values are filled in for absent structs (as Go's decoder leaves them); a body of
    empty items cannot make that a multiplier: decoding stops at a budget of values."""
    with pytest.raises(ApiError) as e:
        decode_body(envelope("v1", "NodeList", ld(2, b"") * 50_000), PROTOBUF)
    assert "unfolds into more than" in e.value.message
    item = {k: v for k, v in RICH[0].items() if k not in ("kind", "apiVersion")}  # items carry no TypeMeta
    rich = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": [item] * 200}
    assert decode_body(protobuf.encode(rich), PROTOBUF) == rich


@pytest.mark.parametrize("name", CAPTURED)
def test_mangled_captured_bodies_never_fail_otherwise(name: str) -> None:
    """Truncations and random byte changes of real bodies: decoded, or a 400; nothing else."""
    body = (FIXTURES / f"{name}.pb").read_bytes()
    rng = random.Random(name)
    variants = [body[:i] for i in range(len(body))]
    for _ in range(1500):
        b = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        variants.append(bytes(b))
    for v in variants:
        try:
            value = decode_body(v, PROTOBUF)
        except ApiError as e:
            assert e.code == 400
        else:
            assert isinstance(value, dict)
            json.dumps(value)


# -- the request layer -----------------------------------------------------------------------


def test_protobuf_is_an_object_media_type() -> None:
    assert PROTOBUF in OBJECT_MEDIA_TYPES


@pytest.mark.parametrize(("accept", "only"), [
    (None, False),
    ("", False),
    ("application/vnd.kubernetes.protobuf", True),
    ("application/vnd.kubernetes.protobuf;q=1", True),
    ("application/vnd.kubernetes.protobuf, application/json", False),  # client-go's default for typed clients
    ("application/json;q=0.9, application/vnd.kubernetes.protobuf", False),
    ("application/vnd.kubernetes.protobuf, */*", False),
    ("application/vnd.kubernetes.protobuf, application/json;q=0", True),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io", False),
    ("application/json", False),
    ("application/yaml", False),
])
def test_protobuf_only(accept: str | None, only: bool) -> None:
    assert protobuf_only(accept) is only


def _app() -> Starlette:
    pod = RICH[0]

    async def endpoint(request: Request) -> Response:
        what = request.path_params["what"]
        if what == "pod":
            resp = Response(json.dumps(pod), media_type="application/json")
            resp.headers.append("Warning", '299 - "one"')
            resp.headers.append("Warning", '299 - "two"')
        elif what == "missing":
            resp = Response(json.dumps(RICH[3]), status_code=404, media_type="application/json")
        else:
            resp = Response(json.dumps({"kind": "Table", "apiVersion": "meta.k8s.io/v1"}),
                            media_type="application/json")
        return protobuf_response(request.headers.get("accept"), resp)

    return Starlette(routes=[Route("/{what}", endpoint)])


def test_answers_in_protobuf_only_to_who_takes_only_protobuf() -> None:
    client = TestClient(_app())
    only = {"Accept": "application/vnd.kubernetes.protobuf"}
    r = client.get("/pod", headers=only)
    assert r.status_code == 200 and r.headers["content-type"] == PROTOBUF
    assert r.headers.get_list("warning") == ['299 - "one"', '299 - "two"']
    assert int(r.headers["content-length"]) == len(r.content)
    assert protobuf.decode(r.content) == RICH[0]
    r = client.get("/missing", headers=only)
    assert r.status_code == 404 and protobuf.decode(r.content)["reason"] == "NotFound"
    r = client.get("/table", headers=only)
    assert r.headers["content-type"] == "application/json" and r.json()["kind"] == "Table"
    r = client.get("/pod", headers={"Accept": "application/vnd.kubernetes.protobuf, application/json"})
    assert r.headers["content-type"] == "application/json" and r.json() == RICH[0]


# -- the whole path, through the API server --------------------------------------------------


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The API server, with the response hook `ApiServer.dispatch` and `_plain_get` take
    for protobuf-only clients (bodies need none: protobuf is an object media type)."""
    dispatch, plain_get = ApiServer.dispatch, ApiServer._plain_get

    async def hooked_dispatch(self: ApiServer, request: Request) -> Response:
        return protobuf_response(request.headers.get("accept"), await dispatch(self, request))

    def hooked_plain_get(self: ApiServer, scope: Any) -> bytes | None:
        accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
        return None if protobuf_only(accept) else plain_get(self, scope)

    monkeypatch.setattr(ApiServer, "dispatch", hooked_dispatch)
    monkeypatch.setattr(ApiServer, "_plain_get", hooked_plain_get)
    reg = Registry(SQLiteStore(str(tmp_path / "s.db")))
    reg.ensure_namespaces()
    server = ApiServer(reg, Authenticator(ADMIN, "join-secret-0123456789", b"n" * 32), b"PEM",
                       lambda n: node_token(b"n" * 32, n))
    return TestClient(server.app)


def _served(path: str) -> bool:
    return any(k.base_path() in path.replace("/namespaces/default", "") for k in SERVED)


@pytest.mark.parametrize("name", [n for n in CAPTURED if request_line(n)[0] == "POST"])
def test_kubectl_bodies_create_objects(api: TestClient, name: str) -> None:
    method, path = request_line(name)
    if not _served(path):
        pytest.skip(f"{path} is not served")
    body = (FIXTURES / f"{name}.pb").read_bytes()
    r = api.request(method, path + "?fieldValidation=Strict", content=body, headers={**H, "Content-Type": PROTOBUF})
    assert r.status_code == 201, r.text
    sent = json.loads((FIXTURES / f"{name}.json").read_text())
    got = r.json()
    assert got["kind"] == sent["kind"] and got["metadata"]["name"] == sent["metadata"]["name"]
    if name == "create-deployment-zero":
        assert got["spec"]["replicas"] == 0
    if name == "create-secret":
        assert got["data"] == {"k": "dg=="}


def test_delete_options_body_in_protobuf(api: TestClient) -> None:
    cms = "/api/v1/namespaces/default/configmaps"
    assert api.post(cms, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                    headers=H).status_code == 201
    opts = envelope("v1", "DeleteOptions", vi(1, 0) + ld(4, b"Background"))
    r = api.request("DELETE", f"{cms}/c", content=opts, headers={**H, "Content-Type": PROTOBUF})
    assert r.status_code == 200, r.text
    assert api.get(f"{cms}/c", headers=H).status_code == 404
    bad = api.request("DELETE", f"{cms}/c", content=b"k8s\x00\x0a\x05",
                      headers={**H, "Content-Type": PROTOBUF})
    assert bad.status_code == 400 and "runs past the end" in bad.json()["message"]


def test_malformed_protobuf_is_400_through_the_api(api: TestClient) -> None:
    r = api.post("/api/v1/namespaces/default/configmaps", content=b"k8s\x00",
                 headers={**H, "Content-Type": PROTOBUF})
    assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
    assert "names no kind" in r.json()["message"]
    patch = api.patch("/api/v1/namespaces/default/configmaps/c", content=b"k8s\x00",
                      headers={**H, "Content-Type": PROTOBUF})
    assert patch.status_code == 415


def test_protobuf_only_clients_get_protobuf(api: TestClient) -> None:
    only = {**H, "Accept": PROTOBUF}
    cms = "/api/v1/namespaces/default/configmaps"
    created = api.post(cms, content=configmap(ld(1, b"c"), ld(2, ld(1, b"a") + ld(2, b"b"))),
                       headers={**only, "Content-Type": PROTOBUF})
    assert created.status_code == 201 and created.headers["content-type"] == PROTOBUF
    obj = protobuf.decode(created.content)
    assert obj["data"] == {"a": "b"} and obj["metadata"]["uid"]
    got = api.get(f"{cms}/c", headers=only)  # the short path of plain GETs steps aside
    assert got.headers["content-type"] == PROTOBUF and protobuf.decode(got.content) == obj
    listed = protobuf.decode(api.get(cms, headers=only).content)
    assert listed["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in listed["items"]] == ["c"]
    missing = api.get(f"{cms}/nope", headers=only)
    assert missing.status_code == 404 and protobuf.decode(missing.content)["reason"] == "NotFound"
    assert api.get("/api/v1", headers=only).headers["content-type"].startswith("application/json")
    assert api.get(f"{cms}/c", headers=H).json() == obj
