"""kubectl's command-line habits: flags anywhere before `--`, `k=v`/`k-` changes, `--for` conditions,
JSONPath, durations, and the pure builders of the imperative verbs."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.cli import create, expose, jsonpath, labels, run, setcmd, targets, wait
from orchestrator.cli.main import build_parser, main, parse
from orchestrator.cli.options import go_duration
from orchestrator.cli.output import CliError


def p(*argv: str) -> argparse.Namespace:
    return parse(build_parser(), list(argv))


# -- flags anywhere before -- ------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["exec", "web-1", "-c", "web", "--", "cat", "/etc/hostname"],
    ["exec", "-c", "web", "web-1", "--", "cat", "/etc/hostname"],
    ["exec", "web-1", "--container=web", "--", "cat", "/etc/hostname"],
    ["-n", "default", "exec", "web-1", "-c", "web", "--", "cat", "/etc/hostname"],
    ["exec", "web-1", "-c", "web", "-n", "default", "--", "cat", "/etc/hostname"],
])
def test_exec_flags_anywhere_before_the_command(argv: list[str]) -> None:
    args = p(*argv)
    assert (args.pod, args.container, args.cmd, args.dashdash) == ("web-1", "web", ["cat", "/etc/hostname"], True)


def test_the_commands_own_flags_stay_its_own() -> None:
    args = p("exec", "-i", "-t", "web-1", "--", "sh", "-c", "echo -- -n", "--", "-x")
    assert args.stdin and args.tty and args.container is None
    assert args.cmd == ["sh", "-c", "echo -- -n", "--", "-x"]


def test_exec_without_dashdash_is_kubectls_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", "web-1", "ls"]) == 1
    assert capsys.readouterr().err == ("error: exec [POD] [COMMAND] is not supported anymore. "
                                       "Use exec [POD] -- [COMMAND] instead\n")


@pytest.mark.parametrize("argv", [
    ["logs", "web-1", "-c", "web", "-f", "--tail", "3"],
    ["logs", "-f", "web-1", "--tail=3", "-c", "web"],
    ["logs", "--tail", "3", "-c", "web", "-f", "web-1"],
])
def test_logs_flags_in_any_order(argv: list[str]) -> None:
    args = p(*argv)
    assert (args.pod, args.container, args.follow, args.tail) == ("web-1", "web", True, 3)


def test_logs_takes_the_container_as_a_second_word() -> None:
    args = p("logs", "web-1", "side")
    assert args.container_arg == "side"


def test_dashdash_of_other_commands_is_argparses() -> None:
    args = p("get", "po", "--", "web")
    assert args.targets == ["po", "web"]


def test_words_continue_after_flags() -> None:
    args = p("label", "pods", "-l", "app=web", "tier=front", "--overwrite", "old-")
    assert args.words == ["pods", "tier=front", "old-"] and args.selector == "app=web" and args.overwrite
    args = p("set", "resources", "deploy/web", "-c", "web", "--limits=cpu=200m,memory=64Mi")
    assert args.words == ["deploy/web"] and args.containers == "web"
    args = p("wait", "--for=delete", "pod", "--timeout=5s", "web-1")
    assert args.words == ["pod", "web-1"] and args.timeout == 5.0


def test_unknown_flags_after_words_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", "pods", "web", "a=1", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_run_and_create_deployment_take_the_command_after_dashdash() -> None:
    args = p("run", "x", "--image=busybox", "--restart=Never", "--command", "--", "sleep", "1")
    assert args.cmd == ["sleep", "1"] and args.as_command and args.restart == "Never"
    args = p("create", "deployment", "web", "--image=busybox", "--", "sleep", "3600")
    assert args.cmd == ["sleep", "3600"] and args.image == ["busybox"]
    args = p("create", "deployment", "web", "--image=a", "--image=b", "--dry-run", "-o", "yaml")
    assert args.dry_run == "client" and args.output == "yaml"


# -- k=v / k- ------------------------------------------------------------------------------------


def test_split_pairs_is_kubectls_rule() -> None:
    assert targets.split_pairs(["pods", "web", "a=1", "b-"], "label") == (["pods", "web"], ["a=1", "b-"])
    assert targets.split_pairs(["deploy/web", "x="], "label") == (["deploy/web"], ["x="])
    assert targets.split_pairs(["pods", "-"], "label") == (["pods", "-"], [])
    with pytest.raises(CliError, match="all resources must be specified before label changes: web"):
        targets.split_pairs(["pods", "a=1", "web"], "label")


def test_label_changes() -> None:
    assert labels.parse_changes(["a=1", "example.com/b=x", "c-", "d="], "label") == (
        {"a": "1", "example.com/b": "x", "d": ""}, ["c"])
    with pytest.raises(CliError, match="invalid label value"):
        labels.parse_changes(["a=has space"], "label")
    assert labels.parse_changes(["note=has space"], "annotation") == ({"note": "has space"}, [])
    with pytest.raises(CliError, match="invalid label spec"):
        labels.parse_changes(["-bad=1"], "label")
    with pytest.raises(CliError, match="both modify and remove"):
        labels.parse_changes(["a=1", "a-"], "label")


def test_label_patch_and_overwrite() -> None:
    current = {"a": "1", "b": "2"}
    assert labels.apply_changes(current, {"a": "1"}, [], False, "label") == {}
    assert labels.apply_changes(current, {"c": "3"}, ["b", "zz"], False, "label") == {"c": "3", "b": None}
    with pytest.raises(CliError, match=r"'a' already has a value \(1\), and --overwrite is false"):
        labels.apply_changes(current, {"a": "9"}, [], False, "label")
    assert labels.apply_changes(current, {"a": "9"}, [], True, "label") == {"a": "9"}


def test_set_env_and_image_edits() -> None:
    deploy: dict[str, Any] = {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "a", "env": [{"name": "B", "value": "old"}]},
                       {"name": "side", "image": "s"}]}}}}
    sets, removes = setcmd.parse_env(["A=1", "B-", "C=x=y"])
    assert sets == [("A", "1"), ("C", "x=y")] and removes == ["B"]
    setcmd.set_env(deploy, "web", [{"name": k, "value": v} for k, v in sets], removes)
    web, side = deploy["spec"]["template"]["spec"]["containers"]
    assert web["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "x=y"}] and "env" not in side
    setcmd.set_images(deploy, setcmd.parse_images(["side=s:2"]))
    assert side["image"] == "s:2" and web["image"] == "a"
    setcmd.set_images(deploy, {"*": "all:1"})
    assert web["image"] == side["image"] == "all:1"
    with pytest.raises(CliError, match='unable to find container named "nope"'):
        setcmd.set_images(deploy, {"nope": "x"})
    with pytest.raises(CliError, match="key=value or key-"):
        setcmd.parse_env(["JUSTANAME"])


def test_set_resources_quantities() -> None:
    assert setcmd.parse_quantities("cpu=200m,memory=64Mi", "--limits") == {"cpu": "200m", "memory": "64Mi"}
    with pytest.raises(CliError, match="--requests"):
        setcmd.parse_quantities("cpu=lots", "--requests")
    pod: dict[str, Any] = {"kind": "Pod", "spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    setcmd.set_resources(pod, "b", {"cpu": "1"}, {"memory": "1Gi"})
    assert "resources" not in pod["spec"]["containers"][0]
    assert pod["spec"]["containers"][1]["resources"] == {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}}


# -- wait --for and JSONPath --------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("condition=Available", wait.Condition("condition", "Available", "true")),
    ("condition=Ready=False", wait.Condition("condition", "Ready", "False")),
    ("delete", wait.Condition("delete")),
    ("create", wait.Condition("create")),
    ("jsonpath={.status.phase}=Running", wait.Condition("jsonpath", "{.status.phase}", "Running")),
    ("jsonpath='{.status.phase}'=Running", wait.Condition("jsonpath", "{.status.phase}", "Running")),
    ("jsonpath={.status.conditions[?(@.type==\"Ready\")].status}=True",
     wait.Condition("jsonpath", "{.status.conditions[?(@.type==\"Ready\")].status}", "True")),
    ("jsonpath={.status.loadBalancer.ingress}", wait.Condition("jsonpath", "{.status.loadBalancer.ingress}", None)),
    ("jsonpath=.spec.replicas=3", wait.Condition("jsonpath", ".spec.replicas", "3")),
])
def test_parse_condition(text: str, expected: wait.Condition) -> None:
    assert wait.parse_condition(text) == expected


@pytest.mark.parametrize("text", ["condition=", "ready", "jsonpath=", "jsonpath={.a", "jsonpath={.a}x"])
def test_bad_conditions(text: str) -> None:
    with pytest.raises(CliError):
        wait.parse_condition(text)


def test_conditions_met() -> None:
    deploy = {"metadata": {"generation": 2}, "status": {"phase": "Running", "replicas": 3, "conditions": [
        {"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True", "observedGeneration": 1}]}}
    assert wait.met(deploy, wait.parse_condition("condition=available"))
    assert not wait.met(deploy, wait.parse_condition("condition=Available=false"))
    assert not wait.met(deploy, wait.parse_condition("condition=Progressing"))  # stale generation
    assert wait.met(deploy, wait.parse_condition("jsonpath={.status.replicas}=3"))
    assert wait.met(deploy, wait.parse_condition("jsonpath={.status.phase}"))
    assert not wait.met(deploy, wait.parse_condition("jsonpath={.status.nothing}"))
    with pytest.raises(CliError, match="matches more than one value"):
        wait.met(deploy, wait.parse_condition("jsonpath={.status.conditions[*].type}=Available"))
    assert wait.met(None, wait.parse_condition("delete"))
    assert not wait.met(None, wait.parse_condition("condition=Available"))


def test_jsonpath() -> None:
    obj = {"metadata": {"annotations": {"a.io/x": "1"}}, "items": [{"n": 1}, {"n": 2}],
           "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}}
    assert jsonpath.find(obj, "{.metadata.annotations['a.io/x']}") == ["1"]
    assert jsonpath.find(obj, "{.items[*].n}") == [1, 2]
    assert jsonpath.find(obj, "{.items[-1].n}") == [2]
    assert jsonpath.find(obj, '{.status.conditions[?(@.type=="X")].status}') == ["False"]
    assert jsonpath.find(obj, "{..type}") == ["Ready", "X"]
    assert jsonpath.text(True) == "true" and jsonpath.text({"a": 1}) == '{"a":1}'


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5), ("10", 10),
                                          ("-1s", -1)])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration(text) == seconds


def test_bad_duration() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        go_duration("soon")


# -- builders ------------------------------------------------------------------------------------


def test_create_deployment_is_kubectls_object() -> None:
    obj = create.build_deployment("web", ["registry.io/team/nginx_x:1.25", "nginx@sha256:abc"], 2, None)
    assert obj["metadata"] == {"labels": {"app": "web"}, "name": "web"}
    assert [c["name"] for c in obj["spec"]["template"]["spec"]["containers"]] == ["nginx-x", "nginx"]
    assert obj["spec"]["replicas"] == 2 and obj["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    with pytest.raises(CliError, match="image"):
        create.build_deployment("web", [], 1)


def test_configmap_and_secret_sources(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "one").write_text("1")
    (tmp_path / "bin").write_bytes(b"\xff\x00")
    (tmp_path / "e.env").write_text("# c\n\nA=1\nB = spaced\n")
    data = create.sources_data(["k=v"], [str(tmp_path / "dir"), f"blob={tmp_path / 'bin'}"], [str(tmp_path / "e.env")])
    assert data == {"k": b"v", "one": b"1", "blob": b"\xff\x00", "A": b"1", "B": b" spaced"}
    cm = create.build_configmap("c", data)
    assert cm["binaryData"] == {"blob": base64.b64encode(b"\xff\x00").decode()} and cm["data"]["k"] == "v"
    secret = create.build_secret("s", {"k": b"v"}, "Opaque")
    assert secret["data"] == {"k": "dg=="} and secret["type"] == "Opaque"
    with pytest.raises(CliError, match="another key by that name"):
        create.sources_data(["k=1", "k=2"], [], [])
    with pytest.raises(CliError, match="valid key"):
        create.sources_data(["bad key=1"], [], [])


def test_docker_registry_secret() -> None:
    s = create.build_docker_registry_secret("r", "reg.io", "u", "p", "e@x")
    config = json.loads(base64.b64decode(s["data"][".dockerconfigjson"]))
    assert config == {"auths": {"reg.io": {"username": "u", "password": "p", "email": "e@x", "auth": "dTpw"}}}


def test_expose_builds_the_service() -> None:
    deploy = {"kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
              "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"spec": {"containers": [
                  {"name": "web", "ports": [{"containerPort": 8080}, {"containerPort": 9090, "protocol": "UDP"}]}]}}}}
    svc = expose.build_service(deploy, port="80", target_port="http", service_type="NodePort")
    assert svc["spec"] == {"ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}],
                           "selector": {"app": "web"}, "type": "NodePort"}
    svc = expose.build_service(deploy)
    assert svc["spec"]["ports"] == [{"name": "port-1", "port": 8080, "protocol": "TCP", "targetPort": 8080},
                                    {"name": "port-2", "port": 9090, "protocol": "UDP", "targetPort": 9090}]
    with pytest.raises(CliError, match="--port"):
        expose.build_service({"kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}, "spec": {}})


def test_run_builds_the_pod() -> None:
    pod = run.build_pod("x", "busybox", 80, ["A=1"], None, "Never", True, ["sleep", "1"])
    c = pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"] == {"run": "x"} and pod["spec"]["restartPolicy"] == "Never"
    assert c["command"] == ["sleep", "1"] and c["env"] == [{"name": "A", "value": "1"}]
    assert run.build_pod("x", "b", words=["a"])["spec"]["containers"][0]["args"] == ["a"]


def test_jsonpath_templates() -> None:
    data = {"kind": "List", "items": [{"metadata": {"name": "a"}, "status": {"podIP": "10.0.0.1"}},
                                      {"metadata": {"name": "b"}, "status": {}}]}
    assert jsonpath.render('{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}', data) == \
        "a\t10.0.0.1\nb\t\n"
    assert jsonpath.render("{.items[*].metadata.name}", data) == "a b"
    assert jsonpath.render("name={.items[0].metadata.name}!", data) == "name=a!"
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.render("{range .items[*]}{.x}", data)


def test_get_takes_jsonpath_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert p("get", "po", "web", "-o", "jsonpath={.status.podIP}").output == "jsonpath={.status.podIP}"
    assert p("get", "po", "-ojsonpath={.items[*].metadata.name}").output.startswith("jsonpath=")
    assert main(["get", "po", "-o", "template"]) == 2
    assert "unable to match a printer suitable for the output format 'template'" in capsys.readouterr().err


def test_logs_selector_flags() -> None:
    args = p("logs", "-l", "app=web", "--all-containers", "--prefix", "-f")
    assert args.pod is None and args.selector == "app=web" and args.all_containers and args.prefix
    assert p("logs", "web-1").tail is None


def test_create_service_is_kubectls_object() -> None:
    svc = create.build_service("web", "NodePort", ["80:8080", "443:https"], node_port=30080)
    assert svc["metadata"] == {"labels": {"app": "web"}, "name": "web"}
    assert svc["spec"]["ports"] == [
        {"name": "80-8080", "nodePort": 30080, "port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "443-https", "nodePort": 30080, "port": 443, "protocol": "TCP", "targetPort": "https"}]
    assert svc["spec"]["selector"] == {"app": "web"} and svc["spec"]["type"] == "NodePort"
    assert create.build_service("h", "ClusterIP", [], cluster_ip="None")["spec"]["clusterIP"] == "None"
    with pytest.raises(CliError, match="--tcp"):
        create.build_service("web", "ClusterIP", ["http"])
    with pytest.raises(CliError, match="at least one port"):
        create.build_service("web", "ClusterIP", [])


def test_taints() -> None:
    from orchestrator.cli import taint

    add, remove = taint.parse_taints(["dedicated=gpu:NoSchedule", "maint:NoExecute", "old-", "x:PreferNoSchedule-"])
    assert add == [{"effect": "NoSchedule", "key": "dedicated", "value": "gpu"}, {"effect": "NoExecute", "key": "maint"}]
    assert remove == [("old", None), ("x", "PreferNoSchedule")]
    with pytest.raises(CliError, match="invalid taint effect"):
        taint.parse_taints(["a=b:Sometimes"])
    current = [{"key": "old", "effect": "NoSchedule"}, {"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}]
    new, word = taint.apply_taints(current, [], [("old", None)], False)
    assert new == [current[1]] and word == "untainted"
    with pytest.raises(CliError, match="--overwrite is false"):
        taint.apply_taints(current, add[:1], [], False)
    new, word = taint.apply_taints(current, add[:1], [], True)
    assert new[1]["value"] == "gpu" and word == "modified"
    assert taint.apply_taints([], add[1:], [], False) == ([add[1]], "tainted")
    with pytest.raises(CliError, match='taint "nope" not found'):
        taint.apply_taints(current, [], [("nope", None)], False)


def test_autoscale_builds_the_hpa() -> None:
    from orchestrator.cli import autoscale

    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}
    hpa = autoscale.build_hpa(deploy, 5, 2, 70)
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["metadata"] == {"name": "web"}
    assert hpa["spec"] == {"maxReplicas": 5, "minReplicas": 2,
                           "metrics": [{"resource": {"name": "cpu", "target": {"averageUtilization": 70,
                                                                               "type": "Utilization"}},
                                        "type": "Resource"}],
                           "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}
    with pytest.raises(CliError, match="larger or equal"):
        autoscale.build_hpa(deploy, 1, 3, None)
    with pytest.raises(CliError, match="only deployments and replicasets"):
        autoscale.build_hpa({"kind": "Pod", "metadata": {"name": "p"}}, 2, None, None)


def test_get_sort_by() -> None:
    from orchestrator.cli.get import sort_by

    objs = [{"n": "b", "spec": {"replicas": 10}}, {"n": "a", "spec": {"replicas": 9}}, {"n": "c", "spec": {}}]
    assert [o["n"] for o in sort_by(objs, ".spec.replicas")] == ["c", "a", "b"]
    assert [o["n"] for o in sort_by(objs, "{.n}")] == ["a", "b", "c"]


def test_words_between_the_pod_and_dashdash_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", "web-1", "ls", "--", "x"]) == 1
    assert "Use exec [POD] -- [COMMAND] instead" in capsys.readouterr().err
    assert main(["exec", "web-1", "-c", "web", "ls"]) == 1
    assert "Use exec [POD] -- [COMMAND] instead" in capsys.readouterr().err
    assert main(["create", "deployment", "web", "extra", "--image=x", "--dry-run"]) == 1
    assert "exactly one NAME is required" in capsys.readouterr().err
    assert main(["run", "x", "--image=i", "extra", "--", "a"]) == 1
    assert "after --" in capsys.readouterr().err
