"""The dockyard CLI's kubectl verbs end to end against one real `dockyard up`.

Every test runs `python -m orchestrator …` as a subprocess with the cluster's kubeconfig and
checks kubectl's output lines and exit codes. One cluster for the module; the objects the
tests share (a Deployment `web`, a two-container Pod `web-1`) are made once.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.objects.kinds import resolve
from tests.support.cluster import ROOT, Cluster, running, wait_for
from tests.support.images import DEMO_IMAGE

pytestmark = pytest.mark.docker

BUSYBOX = "dockyard/busybox:1"
POD = resolve("pods")
DEPLOY = resolve("deployments")

WEB_1 = f"""
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels: {{app: solo}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {BUSYBOX}
    command: [sh, -c, "echo from-web; sleep 3600"]
  - name: side
    image: {BUSYBOX}
    command: [sh, -c, "echo from-side; sleep 3600"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, demo_image: str) -> Iterator[Cluster]:
    with running(Cluster(tmp_path_factory.mktemp("cliverbs"), cluster_cidr="10.231.0.0/16")) as c:
        yield c


def dy(cluster: Cluster, *args: str, input: str | None = None, env: dict[str, str] | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "--kubeconfig", str(cluster.kubeconfig), *args],
                          input=input, capture_output=True, text=True, env={**cluster.env(), **(env or {})},
                          cwd=str(ROOT), timeout=timeout)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


@pytest.fixture(scope="module")
def web(cluster: Cluster) -> str:
    out = ok(dy(cluster, "create", "deployment", "web", f"--image={DEMO_IMAGE}", "--replicas=2", "--port=80"))
    assert out == "deployment.apps/web created\n"
    ok(dy(cluster, "apply", "-f", "-", input=WEB_1))
    ok(dy(cluster, "wait", "deploy/web", "--for=condition=Available", "--timeout=90s"))
    ok(dy(cluster, "wait", "pod/web-1", "--for=jsonpath={.status.phase}=Running", "--timeout=60s"))
    return "web"


# -- exec and logs: flags anywhere before -- -------------------------------------------------


def test_exec_takes_flags_after_the_pod_name(cluster: Cluster, web: str) -> None:
    r = dy(cluster, "exec", "web-1", "-c", "web", "--", "cat", "/etc/hostname")
    assert ok(r).strip() == "web-1"
    # the command's own -c is the command's
    assert ok(dy(cluster, "exec", "web-1", "-c", "side", "--", "sh", "-c", "echo $((1+2))")) == "3\n"
    assert ok(dy(cluster, "exec", "-i", "web-1", "--container=web", "--", "tr", "a-z", "A-Z", input="abc\n")) == "ABC\n"
    r = dy(cluster, "exec", "web-1", "-c", "web", "--", "sh", "-c", "exit 7")
    assert r.returncode == 7
    # no -c on a pod with two containers: kubectl's default, and its notice
    r = dy(cluster, "exec", "web-1", "--", "cat", "/etc/hostname")
    assert ok(r).strip() == "web-1"
    assert r.stderr == 'Defaulted container "web" out of: web, side\n'
    # a pod of a deployment, as kubectl picks one
    name = ok(dy(cluster, "exec", "deploy/web", "--", "cat", "/etc/hostname")).strip()
    assert name.startswith("web-") and name != "web-1"
    r = dy(cluster, "exec", "web-1", "ls")
    assert r.returncode == 1
    assert "exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead" in r.stderr


def test_exec_into_a_completed_pod_is_refused_readably(cluster: Cluster) -> None:
    ok(dy(cluster, "run", "finished", f"--image={BUSYBOX}", "--restart=Never", "--", "true"))
    ok(dy(cluster, "wait", "pod/finished", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=60s"))
    r = dy(cluster, "exec", "finished", "--", "true")
    assert r.returncode == 1
    assert r.stderr.strip() == ("Error from server (BadRequest): cannot exec into a container in a completed pod; "
                                "current phase is Succeeded")
    ok(dy(cluster, "delete", "pod", "finished"))


def test_get_jsonpath_output(cluster: Cluster, web: str) -> None:
    assert ok(dy(cluster, "get", "pod", "web-1", "-o", "jsonpath={.metadata.name}")) == "web-1"
    out = ok(dy(cluster, "get", "pods", "-l", "app=web", "-o",
                'jsonpath={range .items[*]}{.metadata.name}{"\\n"}{end}'))
    names = out.splitlines()
    assert len(names) == 2 and all(n.startswith("web-") for n in names)
    out = ok(dy(cluster, "get", "pod", "web-1", "-o", "custom-columns=NAME:.metadata.name,C:.spec.containers[*].name,"
                "X:.nothing"))
    assert [line.split() for line in out.splitlines()] == [["NAME", "C", "X"], ["web-1", "web,side", "<none>"]]
    names = ok(dy(cluster, "get", "pods", "--sort-by=.metadata.name", "-o", "name")).split()
    assert names == sorted(names) and "pod/web-1" in names
    out = ok(dy(cluster, "get", "pod", "web-1", "--show-labels", "-L", "app"))
    header, row = out.splitlines()
    assert header.split()[-2:] == ["APP", "LABELS"] and row.split()[-2:] == ["solo", "app=solo"]


def test_logs_takes_flags_after_the_pod_name(cluster: Cluster, web: str) -> None:
    assert wait_for(lambda: "from-side" in dy(cluster, "logs", "web-1", "-c", "side").stdout, 20)
    assert ok(dy(cluster, "logs", "web-1", "web", "--tail", "1")) == "from-web\n"
    assert ok(dy(cluster, "logs", "pod/web-1", "--tail=1", "-c", "web", "--timestamps")).endswith("from-web\n")
    assert dy(cluster, "logs", "deploy/web", "--tail=1").returncode == 0
    out = ok(dy(cluster, "logs", "-l", "app=solo", "--all-containers", "--prefix"))
    assert sorted(out.splitlines()) == ["[pod/web-1/side] from-side", "[pod/web-1/web] from-web"]
    r = dy(cluster, "logs", "web-1")  # no container named: kubectl's default container, the first
    assert r.returncode == 0 and r.stdout == "from-web\n", r.stderr
    assert 'Defaulted container "web" out of: web, side' in r.stderr


# -- create ----------------------------------------------------------------------------------


def test_create_namespace_configmap_and_secrets(cluster: Cluster, tmp_path: Path) -> None:
    assert ok(dy(cluster, "create", "namespace", "cli-ns")) == "namespace/cli-ns created\n"
    r = dy(cluster, "create", "ns", "cli-ns")
    assert r.returncode == 1 and r.stderr.startswith("Error from server (AlreadyExists):")
    (tmp_path / "app.conf").write_text("x=1\n")
    (tmp_path / "vars.env").write_text("# comment\nA=1\nB=two words\n")
    out = ok(dy(cluster, "-n", "cli-ns", "create", "configmap", "cfg", "--from-literal=k=v=w",
                f"--from-file={tmp_path / 'app.conf'}", f"--from-file=renamed={tmp_path / 'app.conf'}",
                f"--from-env-file={tmp_path / 'vars.env'}"))
    assert out == "configmap/cfg created\n"
    cm = json.loads(ok(dy(cluster, "get", "cm", "cfg", "-n", "cli-ns", "-o", "json")))
    assert cm["data"] == {"k": "v=w", "app.conf": "x=1\n", "renamed": "x=1\n", "A": "1", "B": "two words"}
    out = ok(dy(cluster, "create", "secret", "generic", "pw", "--from-literal=password=s3cret", "-o", "name"))
    assert out == "secret/pw\n"
    secret = cluster.client.get(resolve("secrets"), "pw", "default")
    assert base64.b64decode(secret["data"]["password"]) == b"s3cret"
    out = ok(dy(cluster, "create", "secret", "docker-registry", "regcred", "--docker-server=registry.local",
                "--docker-username=u", "--docker-password=p"))
    assert out == "secret/regcred created\n"
    reg = cluster.client.get(resolve("secrets"), "regcred", "default")
    assert reg["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(base64.b64decode(reg["data"][".dockerconfigjson"]))["auths"]
    assert auths["registry.local"]["auth"] == base64.b64encode(b"u:p").decode()
    assert ok(dy(cluster, "create", "service", "clusterip", "backend", "--tcp=5678:8080")) == \
        "service/backend created\n"
    svc = cluster.client.get(resolve("services"), "backend", "default")
    assert svc["spec"]["ports"][0]["name"] == "5678-8080" and svc["spec"]["selector"] == {"app": "backend"}
    r = dy(cluster, "create", "configmap", "bad", "--from-literal=no_equals")
    assert r.returncode == 1 and "--from-literal" in r.stderr


def test_create_dry_runs_and_unserved_job(cluster: Cluster) -> None:
    doc = yaml.safe_load(ok(dy(cluster, "create", "deployment", "gen", "--image=nginx:1.25", "--port=80",
                               "--dry-run=client", "-o", "yaml")))
    assert doc["spec"]["template"]["spec"]["containers"] == [
        {"image": "nginx:1.25", "name": "nginx", "ports": [{"containerPort": 80}], "resources": {}}]
    assert doc["spec"]["selector"] == {"matchLabels": {"app": "gen"}}
    out = ok(dy(cluster, "create", "deployment", "gen", "--image=nginx:1.25", "--dry-run=server"))
    assert out == "deployment.apps/gen created (server dry run)\n"
    assert ok(dy(cluster, "create", "cm", "gen", "--dry-run")) == "configmap/gen created (dry run)\n"
    assert dy(cluster, "get", "deploy", "gen").returncode == 1  # nothing was stored
    r = dy(cluster, "create", "job", "j", "--image=busybox")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Job" in r.stderr


# -- label, annotate, patch, set ----------------------------------------------------------------


def test_label_and_annotate(cluster: Cluster, web: str) -> None:
    assert ok(dy(cluster, "label", "deploy/web", "tier=front")) == "deployment.apps/web labeled\n"
    assert ok(dy(cluster, "label", "deploy", "web", "tier=front")) == "deployment.apps/web not labeled\n"
    r = dy(cluster, "label", "deploy/web", "tier=back")
    assert r.returncode == 1
    assert "'tier' already has a value (front), and --overwrite is false" in r.stderr
    assert ok(dy(cluster, "label", "deploy/web", "tier=back", "--overwrite")) == "deployment.apps/web labeled\n"
    assert cluster.client.get(DEPLOY, "web", "default")["metadata"]["labels"]["tier"] == "back"
    assert ok(dy(cluster, "label", "deploy/web", "tier-")) == "deployment.apps/web unlabeled\n"
    assert "tier" not in cluster.client.get(DEPLOY, "web", "default")["metadata"]["labels"]
    out = ok(dy(cluster, "label", "pods", "-l", "app=web", "seen=yes"))
    assert out.count("labeled") == 2 and out.startswith("pod/web-")
    assert ok(dy(cluster, "annotate", "pods", "web-1", "note=hello world")) == "pod/web-1 annotated\n"
    assert cluster.client.get(POD, "web-1", "default")["metadata"]["annotations"]["note"] == "hello world"
    r = dy(cluster, "label", "pods", "web-1", "a=1", "other-pod")
    assert r.returncode == 1 and "all resources must be specified before label changes: other-pod" in r.stderr


def test_patch_types(cluster: Cluster, web: str) -> None:
    ok(dy(cluster, "create", "cm", "patched", "--from-literal=a=1"))
    assert ok(dy(cluster, "patch", "cm", "patched", "-p", '{"data":{"b":"2"}}')) == "configmap/patched patched\n"
    assert ok(dy(cluster, "patch", "cm/patched", "--type", "merge", "-p", "data: {b: '2'}")) == \
        "configmap/patched patched (no change)\n"
    out = ok(dy(cluster, "patch", "cm/patched", "--type=json", "-p", '[{"op":"remove","path":"/data/a"}]'))
    assert out == "configmap/patched patched\n"
    assert cluster.client.get(resolve("configmaps"), "patched", "default")["data"] == {"b": "2"}
    r = dy(cluster, "patch", "cm/patched", "--type=json", "-p", '{"op":"x"}')
    assert r.returncode == 1 and "json patch must be a list" in r.stderr
    r = dy(cluster, "patch", "cm/nothere", "-p", "{}")
    assert r.returncode == 1 and "NotFound" in r.stderr


def test_set_image_env_resources(cluster: Cluster, web: str) -> None:
    ok(dy(cluster, "create", "deployment", "setme", f"--image={BUSYBOX}", "--", "sleep", "3600"))
    assert ok(dy(cluster, "set", "image", "deploy/setme", "busybox=" + DEMO_IMAGE)) == \
        "deployment.apps/setme image updated\n"
    r = dy(cluster, "set", "image", "deploy/setme", "nope=x:1")
    assert r.returncode == 1 and 'unable to find container named "nope"' in r.stderr
    assert ok(dy(cluster, "set", "env", "deploy/setme", "A=1", "B=2")) == "deployment.apps/setme env updated\n"
    ok(dy(cluster, "set", "env", "deploy/setme", "B-"))
    assert ok(dy(cluster, "set", "resources", "deploy/setme", "-c", "busybox", "--limits=cpu=200m,memory=64Mi",
                 "--requests=cpu=100m")) == "deployment.apps/setme resource requirements updated\n"
    c = cluster.client.get(DEPLOY, "setme", "default")["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == DEMO_IMAGE
    assert c["env"] == [{"name": "A", "value": "1"}]
    assert c["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}
    assert c["resources"]["requests"]["cpu"] == "100m"
    assert "A=1" in ok(dy(cluster, "set", "env", "deploy/setme", "--list"))
    r = dy(cluster, "set", "resources", "deploy/setme", "--limits=cpu=lots")
    assert r.returncode == 1 and "--limits" in r.stderr


# -- wait, diff, edit ------------------------------------------------------------------------


def test_wait_conditions_and_timeout(cluster: Cluster, web: str) -> None:
    assert ok(dy(cluster, "wait", "deploy/web", "--for=condition=Available")) == \
        "deployment.apps/web condition met\n"
    assert ok(dy(cluster, "wait", "pods", "web-1", "--for", "jsonpath='{.status.phase}'=Running".replace("'", ""))) \
        == "pod/web-1 condition met\n"
    r = dy(cluster, "wait", "pod/web-1", "--for=condition=Nonsense", "--timeout=1s")
    assert r.returncode == 1
    assert r.stderr == "error: timed out waiting for the condition on pods/web-1\n"
    r = dy(cluster, "wait", "pod/none", "--for=condition=Ready", "--timeout=1s")
    assert r.returncode == 1 and "NotFound" in r.stderr
    ok(dy(cluster, "create", "cm", "doomed"))
    waiter = subprocess.Popen([sys.executable, "-m", "orchestrator", "--kubeconfig", str(cluster.kubeconfig),
                               "wait", "cm/doomed", "--for=delete", "--timeout=30s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env(),
                              cwd=str(ROOT))
    ok(dy(cluster, "delete", "cm", "doomed"))
    out, err = waiter.communicate(timeout=40)
    assert waiter.returncode == 0, err
    assert out == "configmap/doomed condition met\n"


def test_wait_for_create_and_create_from_files(cluster: Cluster, tmp_path: Path) -> None:
    waiter = subprocess.Popen([sys.executable, "-m", "orchestrator", "--kubeconfig", str(cluster.kubeconfig),
                               "wait", "cm/later", "--for=create", "--timeout=30s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env(),
                              cwd=str(ROOT))
    manifest = tmp_path / "two.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later}\n---\n"
                        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: later2}\n")
    assert ok(dy(cluster, "create", "-f", str(manifest))) == "configmap/later created\nconfigmap/later2 created\n"
    out, err = waiter.communicate(timeout=40)
    assert waiter.returncode == 0 and out == "configmap/later condition met\n", err
    r = dy(cluster, "create", "-f", str(manifest))
    assert r.returncode == 1 and r.stderr.count("AlreadyExists") == 2


def test_diff_exit_codes(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: differ}\ndata: {a: '1'}\n")
    r = dy(cluster, "diff", "-f", str(manifest))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "+  a: '1'" in r.stdout and "+kind: ConfigMap" in r.stdout
    ok(dy(cluster, "apply", "-f", str(manifest)))
    r = dy(cluster, "diff", "-f", str(manifest))
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: differ}\ndata: {a: '2'}\n")
    r = dy(cluster, "diff", "-f", str(manifest))
    assert r.returncode == 1
    assert any(line.startswith("-") and "a:" in line for line in r.stdout.splitlines())
    assert any(line.startswith("+") and "a:" in line for line in r.stdout.splitlines())
    assert cluster.client.get(resolve("configmaps"), "differ", "default")["data"] == {"a": "1"}  # untouched
    assert ok(dy(cluster, "apply", "--dry-run=server", "-f", str(manifest))) == \
        "configmap/differ configured (server dry run)\n"
    doc = yaml.safe_load(ok(dy(cluster, "apply", "--dry-run=client", "-f", str(manifest), "-o", "yaml")))
    assert doc["data"] == {"a": "2"}
    assert cluster.client.get(resolve("configmaps"), "differ", "default")["data"] == {"a": "1"}  # still
    r = dy(cluster, "diff", "-f", str(tmp_path / "missing.yaml"))
    assert r.returncode > 1


def _editor(tmp_path: Path, script: str) -> dict[str, str]:
    path = tmp_path / "editor.sh"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return {"EDITOR": str(path), "KUBE_EDITOR": ""}


def test_server_side_apply_conflicts_and_force(cluster: Cluster) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: owned\ndata:\n  k: one\n  j: keep\n"
    assert ok(dy(cluster, "apply", "--server-side", "-f", "-", input=cm)) == "configmap/owned serverside-applied\n"
    # a second manager sets k to another value: 409 naming the field and its manager, exit 1
    other = cm.replace("k: one", "k: two").replace("  j: keep\n", "")
    r = dy(cluster, "apply", "-f", "-", "--server-side", "--field-manager", "ci", input=other)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines()[0] == (
        'Error from server (Conflict): Apply failed with 1 conflict: conflict with "dockyard" using v1: .data.k')
    assert "--force-conflicts" in r.stderr.splitlines()[1]
    r = dy(cluster, "apply", "--server-side", "--field-manager=ci", "--force-conflicts", "-f", "-", input=other)
    assert ok(r) == "configmap/owned serverside-applied\n"
    got = json.loads(ok(dy(cluster, "get", "cm", "owned", "-o", "json", "--show-managed-fields")))
    assert got["data"] == {"k": "two", "j": "keep"}
    fields = {e["manager"]: e["fieldsV1"] for e in got["metadata"]["managedFields"]}
    assert fields == {"dockyard": {"f:data": {".": {}, "f:j": {}}}, "ci": {"f:data": {".": {}, "f:k": {}}}}
    assert "managedFields" not in ok(dy(cluster, "get", "cm", "owned", "-o", "yaml"))
    r = dy(cluster, "apply", "--force-conflicts", "-f", "-", input=cm)
    assert r.returncode == 1 and r.stderr == "error: --force-conflicts only works with --server-side\n"
    ok(dy(cluster, "delete", "cm", "owned"))


def test_edit_applies_and_reopens_on_error(cluster: Cluster, tmp_path: Path) -> None:
    ok(dy(cluster, "create", "cm", "edited", "--from-literal=a=1"))
    env = _editor(tmp_path, "sed -i \"s/^  a: .1.$/  a: changed/\" \"$1\"\n")
    assert ok(dy(cluster, "edit", "cm/edited", env=env)) == "configmap/edited edited\n"
    assert cluster.client.get(resolve("configmaps"), "edited", "default")["data"] == {"a": "changed"}
    r = dy(cluster, "edit", "cm", "edited", env=_editor(tmp_path, "true\n"))
    assert r.returncode == 0 and "Edit cancelled, no changes made." in r.stderr
    # first save is rejected (a string where a map belongs); the file comes back with the error
    # as a comment, and the second save fixes it
    counter = tmp_path / "count"
    script = (f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n'
              f'if [ "$n" = 0 ]; then sed -i \'s/^data:$/data: notamap/; /^  a: /d\' "$1";\n'
              f'else grep -q "was not valid\\|is invalid\\|Invalid" "$1" || exit 3; '
              f'sed -i \'s/^data: notamap$/data: {{a: fixed}}/\' "$1"; fi\n')
    r = dy(cluster, "edit", "cm/edited", env=_editor(tmp_path, script))
    assert r.returncode == 0, r.stderr
    assert counter.read_text().strip() == "2"
    assert cluster.client.get(resolve("configmaps"), "edited", "default")["data"] == {"a": "fixed"}


# -- expose, run, events, explain, auth, cp ---------------------------------------------------------


def test_expose_and_run(cluster: Cluster, web: str) -> None:
    out = ok(dy(cluster, "expose", "deploy/web", "--port", "8080", "--target-port", "80", "--type", "NodePort"))
    assert out == "service/web exposed\n"
    svc = cluster.client.get(resolve("services"), "web", "default")
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"][0]["port"] == 8080 and svc["spec"]["ports"][0]["targetPort"] == 80
    out = ok(dy(cluster, "run", "once", f"--image={BUSYBOX}", "--restart=Never", "--env=GREETING=hi",
                "--labels=job=once", "--command", "--", "sh", "-c", "echo $GREETING there"))
    assert out == "pod/once created\n"
    pod = cluster.client.get(POD, "once", "default")
    assert pod["metadata"]["labels"] == {"job": "once"} and pod["spec"]["restartPolicy"] == "Never"
    ok(dy(cluster, "wait", "pod/once", "--for=jsonpath={.status.phase}=Succeeded", "--timeout=60s"))
    assert ok(dy(cluster, "logs", "once")) == "hi there\n"
    r = dy(cluster, "run", "oneshot", f"--image={BUSYBOX}", "--restart=Never", "--attach", "--rm", "--",
           "sh", "-c", "echo out; echo err >&2; exit 4")
    assert r.returncode == 4, r.stderr
    assert sorted(r.stdout.splitlines()) == ["err", "out"]  # the container's two streams, in either order
    assert 'pod "oneshot" deleted' in r.stderr
    assert dy(cluster, "get", "pod", "oneshot").returncode == 1
    r = dy(cluster, "run", "x", f"--image={BUSYBOX}", "-i", "--rm")
    assert r.returncode == 1 and "pods/attach" in r.stderr
    doc = yaml.safe_load(ok(dy(cluster, "run", "gen", "--image=x", "--port=80", "--dry-run=client", "-o", "yaml")))
    assert doc["metadata"]["labels"] == {"run": "gen"}
    assert doc["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]


def test_events_sorted_for_an_object(cluster: Cluster, web: str) -> None:
    out = ok(dy(cluster, "events", "--for", "pod/web-1"))
    lines = out.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert all("pod/web-1" in line for line in lines[1:]) and len(lines) > 1
    assert any("Scheduled" in line for line in lines[1:])
    watcher = subprocess.Popen([sys.executable, "-m", "orchestrator", "--kubeconfig", str(cluster.kubeconfig),
                                "events", "-w", "--for", "pod/watched"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env(),
                               cwd=str(ROOT))
    try:
        ok(dy(cluster, "run", "watched", f"--image={BUSYBOX}", "--", "sleep", "3600"))
        assert watcher.stdout is not None
        line = watcher.stdout.readline()  # the table (when the events came before the list) or a new row
        while line.startswith("LAST SEEN"):
            line = watcher.stdout.readline()
        assert "pod/watched" in line, line
    finally:
        watcher.kill()
        watcher.wait(10)
    events = json.loads(ok(dy(cluster, "events", "-o", "json")))["items"]
    assert events
    out = ok(dy(cluster, "events", "-A", "--types=Warning,Normal"))
    assert out.splitlines()[0].startswith("NAMESPACE")


def test_explain_from_openapi(cluster: Cluster) -> None:
    out = ok(dy(cluster, "explain", "deploy.spec.replicas"))
    assert "GROUP:      apps" in out and "KIND:       Deployment" in out
    assert "FIELD: replicas <integer>" in out
    out = ok(dy(cluster, "explain", "pods"))
    assert out.startswith("KIND:       Pod\nVERSION:    v1\n")
    assert "  spec\t<" in out
    r = dy(cluster, "explain", "pods.spec.nosuchfield")
    assert r.returncode == 1 and 'field "nosuchfield" does not exist' in r.stderr


def test_autoscale_and_taint(cluster: Cluster, web: str) -> None:
    out = ok(dy(cluster, "autoscale", "deploy/web", "--min=2", "--max=4", "--cpu-percent=80"))
    assert out == "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    hpa = cluster.client.get(resolve("hpa"), "web", "default")
    assert hpa["spec"]["maxReplicas"] == 4 and hpa["spec"]["scaleTargetRef"]["name"] == "web"
    ok(dy(cluster, "delete", "hpa", "web"))  # the other tests count web's pods
    node = cluster.node_name
    assert ok(dy(cluster, "taint", "nodes", node, "maint=yes:PreferNoSchedule")) == f"node/{node} tainted\n"
    r = dy(cluster, "taint", "node/" + node, "maint=no:PreferNoSchedule")
    assert r.returncode == 1 and "--overwrite is false" in r.stderr
    taints = cluster.client.get(resolve("nodes"), node)["spec"]["taints"]
    assert {"key": "maint", "value": "yes", "effect": "PreferNoSchedule"} in taints
    assert ok(dy(cluster, "taint", "nodes", node, "maint-")) == f"node/{node} untainted\n"
    assert not any(t["key"] == "maint" for t in cluster.client.get(resolve("nodes"), node)["spec"].get("taints") or [])


def test_api_resources_and_versions(cluster: Cluster) -> None:
    out = ok(dy(cluster, "api-resources"))
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["pods", "po", "v1", "true", "Pod"] in lines
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in lines
    # served in two versions, listed once in the preferred one, as kubectl lists it
    assert [line[2] for line in lines if line[0] == "horizontalpodautoscalers"] == ["autoscaling/v2"]
    names = ok(dy(cluster, "api-resources", "--namespaced=false", "-o", "name")).split()
    assert "nodes" in names and "pods" not in names
    versions = ok(dy(cluster, "api-versions")).split()
    assert "apps/v1" in versions and {"autoscaling/v1", "autoscaling/v2"} <= set(versions)


def test_replace(cluster: Cluster, tmp_path: Path) -> None:
    manifest = tmp_path / "r.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: swapped}\ndata: {a: '1'}\n")
    r = dy(cluster, "replace", "-f", str(manifest))
    assert r.returncode == 1 and "NotFound" in r.stderr
    ok(dy(cluster, "create", "-f", str(manifest)))
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: swapped}\ndata: {b: '2'}\n")
    assert ok(dy(cluster, "replace", "-f", str(manifest))) == "configmap/swapped replaced\n"
    assert cluster.client.get(resolve("configmaps"), "swapped", "default")["data"] == {"b": "2"}
    out = ok(dy(cluster, "replace", "--force", "-f", str(manifest)))
    assert out == 'configmap "swapped" deleted\nconfigmap/swapped replaced\n'
    assert ok(dy(cluster, "delete", "cm", "swapped", "--dry-run=server")) == \
        'configmap "swapped" deleted (server dry run)\n'
    assert ok(dy(cluster, "delete", "cm", "swapped", "--dry-run=client")) == 'configmap "swapped" deleted (dry run)\n'
    assert cluster.client.get(resolve("configmaps"), "swapped", "default")["data"] == {"b": "2"}  # still there


def test_auth_can_i(cluster: Cluster) -> None:
    r = dy(cluster, "auth", "can-i", "create", "deployments")
    assert r.returncode == 0 and r.stdout == "yes\n", r.stderr
    r = dy(cluster, "auth", "can-i", "get", "pods/log", "-q")
    assert r.returncode == 0 and r.stdout == ""
    # a node identity reads pods but may not delete nodes, nor read pod logs
    node = "system:node:" + cluster.node_name
    r = dy(cluster, "auth", "can-i", "list", "pods", "--as", node)
    assert r.returncode == 0 and r.stdout == "yes\n", r.stderr
    r = dy(cluster, "auth", "can-i", "delete", "nodes", "--as", node)
    assert r.returncode == 1 and r.stdout.startswith("no"), (r.stdout, r.stderr)
    r = dy(cluster, "auth", "can-i", "get", "pods/log", "--as", node)
    assert r.returncode == 1 and r.stdout.startswith("no"), (r.stdout, r.stderr)
    r = dy(cluster, "auth", "can-i", "update", "nodes/status", cluster.node_name, "--as", node)
    assert r.returncode == 0 and r.stdout == "yes\n", r.stderr


def test_cp_both_ways(cluster: Cluster, web: str, tmp_path: Path) -> None:
    local = tmp_path / "hello.txt"
    local.write_text("hello from the host\n")
    ok(dy(cluster, "exec", "web-1", "-c", "web", "--", "mkdir", "-p", "/tmp"))  # the test image has no /tmp
    ok(dy(cluster, "cp", str(local), "web-1:/tmp/hello.txt", "-c", "web"))
    assert ok(dy(cluster, "exec", "web-1", "-c", "web", "--", "cat", "/tmp/hello.txt")) == "hello from the host\n"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("deep\n")
    ok(dy(cluster, "cp", str(tree), "default/web-1:/tmp/tree", "-c", "web"))
    back = tmp_path / "back"
    ok(dy(cluster, "cp", "web-1:/tmp/tree", str(back), "-c", "web"))
    assert (back / "sub" / "f").read_text() == "deep\n"
    ok(dy(cluster, "cp", "web-1:/etc/hostname", str(tmp_path / "hn"), "-c", "web"))
    assert (tmp_path / "hn").read_text().strip() == "web-1"
    r = dy(cluster, "cp", "web-1:/no/such", str(tmp_path / "x"), "-c", "web")
    assert r.returncode == 1 and "cannot copy web-1:/no/such" in r.stderr


def test_every_verb_is_in_the_help(cluster: Cluster) -> None:
    out = ok(dy(cluster, "--help"))
    for verb in ("create", "replace", "label", "annotate", "patch", "set", "wait", "diff", "edit", "expose", "run",
                 "autoscale", "taint", "events", "explain", "api-resources", "api-versions", "auth", "cp"):
        assert f"    {verb}" in out, verb
    assert os.environ.get("DOCKYARD_CONFIG") != str(cluster.kubeconfig)
