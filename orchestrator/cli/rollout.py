"""`dockyard rollout status|history|undo|restart|pause|resume deployment/NAME`.

Like kubectl, everything here is client-side over ordinary API calls:

* `status` watches the Deployment and prints a line whenever the rollout's state changes.
  It succeeds (exit 0) once the controller has observed the latest generation and all
  spec.replicas are updated and available with no old replicas left. It fails (exit 1, one
  `error: …` line) when Progressing is False: the progress deadline passed
  (ProgressDeadlineExceeded), a new pod is failing (NewReplicaSetFailing, reported when
  automatic rollback is off or has nothing to return to) or the controller rolled the
  Deployment back (RolledBack). `--timeout` (0 = wait forever) ends the wait with
  "timed out waiting for the condition"; `--no-watch` prints the state once and exits 0
  unless the rollout failed.
* `history` lists the revisions of the Deployment's ReplicaSets (annotation
  `deployment.kubernetes.io/revision`) with their `kubernetes.io/change-cause`;
  `--revision N` shows that revision's pod template.
* `undo [--to-revision N]` copies the pod template of revision N (default: the one before
  the current) into the Deployment, minus the `pod-template-hash` label, as one update
  guarded by the resourceVersion that was read. The controller then treats that template
  as new and reuses the old ReplicaSet.
* `restart` sets `kubectl.kubernetes.io/restartedAt` in the pod template's annotations,
  which makes a new template and so a rolling replacement of every pod.
* `pause` / `resume` set `spec.paused`.
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

from ..client import Client
from ..errors import ApiError
from ..objects import workloads
from ..objects.kinds import by_kind
from . import output
from .apply import parse_targets
from .options import global_options
from .output import CliError

DEPLOY = by_kind("apps/v1", "Deployment")
RS = by_kind("apps/v1", "ReplicaSet")
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def duration(value: str) -> float:
    """Seconds from `90`, `2s`, `5m`, `1h30m`, `500ms` (Go-style durations)."""
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        total += float(m.group(1)) * scale
        pos = m.end()
    if pos != len(text) or not text:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
    return total


# -- parser ------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    common = [global_options(suppress=True)]
    p = subparsers.add_parser("rollout", parents=common, help="manage the rollout of a deployment",
                              description="manage the rollout of a deployment")
    sub = p.add_subparsers(dest="rollout_command", metavar="SUBCOMMAND", required=True)

    def add(name: str, help_text: str, handler: Any, many: bool = False) -> argparse.ArgumentParser:
        c = sub.add_parser(name, parents=common, help=help_text, description=help_text)
        c.add_argument("targets", nargs="+", metavar="deployment/NAME" + (" ..." if many else ""),
                       help="deployment/NAME or deployment NAME")
        c.set_defaults(handler=handler)
        return c

    c = add("status", "wait for a rollout to finish", cmd_status)
    c.add_argument("--timeout", type=duration, default=0.0, metavar="DURATION",
                   help="give up after this long, e.g. 30s or 5m (default 0: wait forever)")
    c.add_argument("-w", "--watch", action=argparse.BooleanOptionalAction, default=True,
                   help="keep watching until the rollout ends (default); --no-watch prints once")
    c = add("history", "list the revisions of a deployment", cmd_history)
    c.add_argument("--revision", type=int, default=0, metavar="N", help="show the pod template of revision N")
    c = add("undo", "roll back to an earlier revision", cmd_undo)
    c.add_argument("--to-revision", type=int, default=0, metavar="N",
                   help="the revision to roll back to (default 0: the previous one)")
    add("restart", "replace every pod of a deployment with a rolling update", cmd_restart, many=True)
    add("pause", "stop rolling out template changes", cmd_pause, many=True)
    add("resume", "resume rolling out template changes", cmd_resume, many=True)


def deployment_names(targets: list[str]) -> list[str]:
    names = []
    for kind, name in parse_targets(targets):
        if kind.kind != "Deployment":
            raise CliError(f"rollout only works on deployments, not {output.display_kind(kind)}")
        if name is None:
            raise CliError("a deployment name is required: deployment/NAME")
        names.append(name)
    return names


def one_deployment(targets: list[str]) -> str:
    names = deployment_names(targets)
    if len(names) != 1:
        raise CliError("exactly one deployment is expected here")
    return names[0]


def _title(name: str) -> str:
    return output.display_name(DEPLOY, name)


# -- status ------------------------------------------------------------------------------


def _condition(dep: dict[str, Any], ctype: str) -> dict[str, Any]:
    for cond in (dep.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return {}


def rollout_state(dep: dict[str, Any]) -> tuple[str, str]:
    """(state, message): state is "done", "failed" or "waiting"; like kubectl's status viewer."""
    meta, spec, status = dep.get("metadata") or {}, dep.get("spec") or {}, dep.get("status") or {}
    name = meta.get("name", "")
    progressing = _condition(dep, "Progressing")
    annotations = meta.get("annotations") or {}
    if (
        progressing.get("status") == "False"
        and progressing.get("reason") == workloads.ROLLED_BACK
        and annotations.get(workloads.ROLLED_BACK_HASH) == workloads.pod_template_hash(spec.get("template") or {})
    ):  # (a RolledBack condition left from before a newer template does not count)
        return "failed", f'deployment "{name}" was rolled back to revision {annotations.get(workloads.ROLLED_BACK_TO, "?")}'
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "waiting", "Waiting for deployment spec update to be observed..."
    if progressing.get("reason") == workloads.DEADLINE_EXCEEDED:
        return "failed", f'deployment "{name}" exceeded its progress deadline'
    if progressing.get("status") == "False" and progressing.get("reason") == workloads.NEW_RS_FAILING:
        return "failed", f'deployment "{name}" rollout failed: {progressing.get("message", "")}'
    replicas = 1 if spec.get("replicas") is None else int(spec["replicas"])
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < replicas:
        return "waiting", waiting + f"{updated} out of {replicas} new replicas have been updated..."
    if total > updated:
        return "waiting", waiting + f"{total - updated} old replicas are pending termination..."
    if available < updated:
        return "waiting", waiting + f"{available} of {updated} updated replicas are available..."
    return "done", f'deployment "{name}" successfully rolled out'


def _wait_for_change(client: Client, name: str, resource_version: str, seconds: float) -> None:
    """Return when the Deployment changed, the watch ended, or `seconds` passed."""
    try:
        for event in client.watch(DEPLOY, resource_version=resource_version,
                                  field_selector=f"metadata.name={name}",
                                  timeout_seconds=max(1, math.ceil(seconds))):
            if event.get("type") in ("MODIFIED", "DELETED", "ERROR"):
                return
    except ApiError as e:
        if e.code in (0, 410) or e.code >= 500:
            time.sleep(min(1.0, seconds))
            return
        raise


def cmd_status(args: argparse.Namespace) -> int:
    name = one_deployment(args.targets)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    last = ""
    with output.connect(args) as client:
        while True:
            dep = client.get(DEPLOY, name)
            state, message = rollout_state(dep)
            if state == "failed":
                raise CliError(message)
            if message != last:
                print(message, flush=True)
                last = message
            if state == "done" or not args.watch:
                return 0
            wait = 30.0
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    raise CliError("timed out waiting for the condition")
                wait = min(wait, 30.0)
            _wait_for_change(client, name, (dep.get("metadata") or {}).get("resourceVersion", ""), wait)


# -- history and undo ----------------------------------------------------------------------


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(workloads.REVISION, "0"))
    except ValueError:
        return 0


def owned_replicasets(client: Client, dep: dict[str, Any]) -> list[dict[str, Any]]:
    """The Deployment's ReplicaSets (controller ownerReference by uid), oldest revision first."""
    uid = (dep.get("metadata") or {}).get("uid")
    items = client.list(RS, (dep.get("metadata") or {}).get("namespace")).get("items") or []
    out = [
        rs for rs in items
        if any(r.get("controller") and r.get("uid") == uid for r in rs["metadata"].get("ownerReferences") or [])
    ]
    return sorted(out, key=_revision)


def plain_template(rs: dict[str, Any]) -> dict[str, Any]:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(workloads.HASH_LABEL, None)
    return template


def cmd_history(args: argparse.Namespace) -> int:
    name = one_deployment(args.targets)
    with output.connect(args) as client:
        dep = client.get(DEPLOY, name)
        rss = [rs for rs in owned_replicasets(client, dep) if _revision(rs) > 0]
    if args.revision:
        rs = next((r for r in rss if _revision(r) == args.revision), None)
        if rs is None:
            raise CliError(f"unable to find the specified revision {args.revision}")
        print(f"{_title(name)} with revision #{args.revision}")
        print("Pod Template:")
        text = output.to_yaml(plain_template(rs))
        print("".join("  " + line for line in text.splitlines(keepends=True)), end="")
        return 0
    rows = [("REVISION", "CHANGE-CAUSE")]
    for rs in rss:
        cause = ((rs.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"
        rows.append((str(_revision(rs)), cause))
    width = max(len(r[0]) for r in rows) + 2
    print(_title(name))
    for revision, cause in rows:
        print(f"{revision:<{width}}{cause}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    name = one_deployment(args.targets)
    with output.connect(args) as client:
        dep = client.get(DEPLOY, name)
        if (dep.get("spec") or {}).get("paused"):
            raise CliError(f"you cannot rollback a paused deployment; resume it first with "
                           f"'dockyard rollout resume deployment/{name}' and try again")
        rss = owned_replicasets(client, dep)
        if args.to_revision:
            target = next((r for r in rss if _revision(r) == args.to_revision), None)
            if target is None:
                raise CliError(f"unable to find specified revision {args.to_revision} in history")
        else:
            if len(rss) < 2:
                raise CliError("no rollout history found for deployment " + f'"{name}"')
            target = rss[-2]
        revision = _revision(target)
        template = plain_template(target)
        current = (dep.get("spec") or {}).get("template") or {}
        if workloads.pod_template_hash(template) == workloads.pod_template_hash(current):
            print(f"{_title(name)} skipped rollback (current template already matches revision {revision})")
            return 0
        dep["spec"]["template"] = template
        cause = ((target.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE)
        annotations = dep["metadata"].setdefault("annotations", {})
        if cause:
            annotations[CHANGE_CAUSE] = cause
        else:
            annotations.pop(CHANGE_CAUSE, None)
        client.replace(dep)  # carries the resourceVersion read above: a concurrent change conflicts
    print(f"{_title(name)} rolled back")
    return 0


# -- restart, pause, resume ----------------------------------------------------------------


def _each(args: argparse.Namespace, action: Any) -> int:
    failed = False
    with output.connect(args) as client:
        for name in deployment_names(args.targets):
            try:
                action(client, name)
            except (ApiError, CliError) as e:
                if getattr(e, "code", None) == 0:
                    raise
                output.report(e)
                failed = True
    return 1 if failed else 0


def cmd_restart(args: argparse.Namespace) -> int:
    def restart(client: Client, name: str) -> None:
        dep = client.get(DEPLOY, name)
        if (dep.get("spec") or {}).get("paused"):
            raise CliError(f"can't restart paused deployment {name} (run rollout resume first)")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
        client.patch(DEPLOY, name, patch, patch_type="merge")
        print(f"{_title(name)} restarted", flush=True)

    return _each(args, restart)


def _set_paused(args: argparse.Namespace, paused: bool) -> int:
    word = "paused" if paused else "resumed"

    def apply(client: Client, name: str) -> None:
        dep = client.get(DEPLOY, name)
        if bool((dep.get("spec") or {}).get("paused")) == paused:
            raise CliError(f'deployments.apps "{name}" is {"already" if paused else "not"} paused')
        client.patch(DEPLOY, name, {"spec": {"paused": paused}}, patch_type="merge")
        print(f"{_title(name)} {word}", flush=True)

    return _each(args, apply)


def cmd_pause(args: argparse.Namespace) -> int:
    return _set_paused(args, True)


def cmd_resume(args: argparse.Namespace) -> int:
    return _set_paused(args, False)
