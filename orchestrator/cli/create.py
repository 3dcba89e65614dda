"""`dockyard create namespace|deployment|configmap|secret|service|job …`: imperative object creation.

Each generator builds the object exactly as `kubectl create` does (same labels, selector,
container names derived from the image, `data` keys from `--from-literal/--from-file/
--from-env-file`), so `--dry-run=client -o yaml` prints a manifest that can be kept and
applied. The write itself is a plain POST; `--dry-run=server` sends `dryRun=All`, and
`--dry-run=client` sends nothing.

Generators are pure functions of the parsed flags (`build_*`), table-tested in the unit
tests; file reading for `--from-file`/`--from-env-file` lives in `sources_data`.

`create service clusterip|nodeport|loadbalancer|externalname NAME --tcp=PORT:TARGET` builds
kubectl's Service (selecting and labelled `app=NAME`, ports named `PORT-TARGET`).

`create job` needs the `batch/v1` Job kind: while the API does not serve it, the command
fails with one line naming the kind instead of sending a request that cannot succeed.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
from pathlib import Path
from typing import Any

from ..client import ConnectionFailed
from ..errors import ApiError
from ..objects.kinds import Kind, UnknownKind, resolve
from . import manifests, output
from .options import dry_run_option, global_options, output_option

KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")


# -- data sources --------------------------------------------------------------------------


def _check_key(key: str, flag: str) -> str:
    if not key or not KEY_RE.match(key):
        raise output.CliError(f'{flag}: "{key}" is not a valid key name: a valid key must consist of '
                              "alphanumeric characters, '-', '_' or '.'")
    return key


def _add(data: dict[str, bytes], key: str, value: bytes, flag: str) -> None:
    _check_key(key, flag)
    if key in data:
        raise output.CliError(f'{flag}: cannot add key "{key}", another key by that name already exists')
    data[key] = value


def parse_literal(text: str) -> tuple[str, str]:
    """`key=value` (the value may hold `=`)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise output.CliError(f'--from-literal: expected key=value, got "{text}"')
    return key, value


def parse_env_file(text: str, source: str) -> list[tuple[str, str]]:
    """Lines `KEY=VALUE`; blank lines and `#` comments skipped; a bare `KEY` takes the value
    from the environment (as kubectl does)."""
    out: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not key.strip() or " " in key.strip():
            raise output.CliError(f"--from-env-file: {source}, line {number}: {key!r} is not a valid variable name")
        if not sep:
            value = os.environ.get(key, "")
        out.append((key.strip(), value))
    return out


def sources_data(literals: list[str], files: list[str], env_files: list[str]) -> dict[str, bytes]:
    """The object's data, in flag order: literals, then files (`[key=]path`, directories
    contribute their regular files), then env files."""
    data: dict[str, bytes] = {}
    for lit in literals:
        key, value = parse_literal(lit)
        _add(data, key, value.encode(), "--from-literal")
    for spec in files:
        key, sep, path_text = spec.partition("=")
        if not sep:
            key, path_text = "", spec
        path = Path(path_text)
        if path.is_dir():
            if key:
                raise output.CliError(f'--from-file: cannot give a key name for the directory "{path_text}"')
            for f in sorted(path.iterdir()):
                if f.is_file():
                    _add(data, f.name, f.read_bytes(), "--from-file")
            continue
        try:
            content = path.read_bytes()
        except OSError as e:
            raise output.CliError(f'--from-file: cannot read "{path_text}": {e.strerror or e}') from None
        _add(data, key or path.name, content, "--from-file")
    for env_file in env_files:
        try:
            text = Path(env_file).read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise output.CliError(f'--from-env-file: cannot read "{env_file}": {e}') from None
        for key, value in parse_env_file(text, env_file):
            _add(data, key, value.encode(), "--from-env-file")
    return data


# -- generators ----------------------------------------------------------------------------


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta = {"labels": labels, **meta}
    return meta


def build_namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "spec": {}, "status": {}}


def container_name(image: str, taken: set[str]) -> str:
    """kubectl's container name for an image: the last path part without tag or digest."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0].replace("_", "-").lower() or "container"
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate)
    return candidate


def build_deployment(name: str, images: list[str], replicas: int = 1, port: int | None = None,
                     command: list[str] | None = None) -> dict[str, Any]:
    if not images:
        raise output.CliError("required flag(s) \"image\" not set")
    if command and len(images) > 1:
        raise output.CliError("cannot specify multiple --image options and command")
    labels = {"app": name}
    taken: set[str] = set()
    containers: list[dict[str, Any]] = []
    for image in images:
        c: dict[str, Any] = {"image": image, "name": container_name(image, taken)}
        if command:
            c["command"] = list(command)
        if port is not None:
            c["ports"] = [{"containerPort": port}]
        c["resources"] = {}
        containers.append(c)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"labels": dict(labels), "name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": containers}},
        },
        "status": {},
    }


def _text_or_binary(data: dict[str, bytes]) -> tuple[dict[str, str], dict[str, str]]:
    text: dict[str, str] = {}
    binary: dict[str, str] = {}
    for k, v in data.items():
        try:
            text[k] = v.decode("utf-8")
        except UnicodeDecodeError:
            binary[k] = base64.b64encode(v).decode()
    return text, binary


def build_configmap(name: str, data: dict[str, bytes]) -> dict[str, Any]:
    text, binary = _text_or_binary(data)
    obj: dict[str, Any] = {"apiVersion": "v1"}
    if binary:
        obj["binaryData"] = binary
    if text:
        obj["data"] = text
    obj.update({"kind": "ConfigMap", "metadata": {"name": name}})
    return obj


def build_secret(name: str, data: dict[str, bytes], secret_type: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1"}
    if data:
        obj["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    obj.update({"kind": "Secret", "metadata": {"name": name}})
    if secret_type:
        obj["type"] = secret_type
    return obj


def build_tls_secret(name: str, cert: bytes, key: bytes) -> dict[str, Any]:
    if b"-----BEGIN" not in cert:
        raise output.CliError("--cert: the file holds no PEM certificate")
    if b"-----BEGIN" not in key:
        raise output.CliError("--key: the file holds no PEM private key")
    return build_secret(name, {"tls.crt": cert, "tls.key": key}, "kubernetes.io/tls")


def build_docker_registry_secret(name: str, server: str, username: str, password: str,
                                 email: str | None) -> dict[str, Any]:
    import json

    entry: dict[str, str] = {"username": username, "password": password}
    if email:
        entry["email"] = email
    entry["auth"] = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = json.dumps({"auths": {server: entry}}, separators=(",", ":")).encode()
    return build_secret(name, {".dockerconfigjson": config}, "kubernetes.io/dockerconfigjson")


SERVICE_TYPES = {"clusterip": "ClusterIP", "nodeport": "NodePort", "loadbalancer": "LoadBalancer",
                 "externalname": "ExternalName"}


def build_service(name: str, service_type: str, tcp: list[str], cluster_ip: str | None = None,
                  node_port: int | None = None, external_name: str | None = None) -> dict[str, Any]:
    """kubectl's `create service TYPE NAME --tcp=PORT:TARGET`: selects and is labelled `app=NAME`."""
    ports: list[dict[str, Any]] = []
    for spec in tcp:
        port_text, _, target_text = spec.partition(":")
        target_text = target_text or port_text
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise output.CliError(f'--tcp: "{spec}": expected PORT[:TARGET] with PORT 1-65535')
        entry: dict[str, Any] = {"name": f"{port_text}-{target_text}", "port": int(port_text), "protocol": "TCP",
                                 "targetPort": int(target_text) if target_text.isdigit() else target_text}
        if node_port is not None:
            entry["nodePort"] = node_port
        ports.append(dict(sorted(entry.items())))  # kubectl prints fields in alphabetical order
    if service_type != "ExternalName" and not ports and cluster_ip != "None":
        raise output.CliError('at least one port is needed: --tcp=PORT[:TARGET]')
    spec_: dict[str, Any] = {}
    if cluster_ip:
        spec_["clusterIP"] = cluster_ip
    if external_name:
        spec_["externalName"] = external_name
    if ports:
        spec_["ports"] = ports
    spec_["selector"] = {"app": name}
    spec_["type"] = service_type
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"labels": {"app": name}, "name": name},
            "spec": spec_, "status": {"loadBalancer": {}}}


def build_job(name: str, image: str, command: list[str] | None) -> dict[str, Any]:
    container: dict[str, Any] = {"image": image, "name": name, "resources": {}}
    if command:
        container["command"] = list(command)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"metadata": {}, "spec": {"containers": [container],
                                                           "restartPolicy": "Never"}}},
            "status": {}}


# -- the command ---------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    common = [global_options(suppress=True)]
    p = subparsers.add_parser("create", parents=common, help="create an object from flags (or -f FILE)",
                              description="create an object from flags, as kubectl create does")
    p.add_argument("-f", "--filename", action="append", default=[], metavar="FILE",
                   help="create the objects of manifest files instead (- for stdin)")
    p.add_argument("-R", "--recursive", action="store_true", help="descend into subdirectories of -f DIR")
    output_option(p)
    dry_run_option(p)
    p.set_defaults(handler="orchestrator.cli.create:cmd_create_files")
    kinds = p.add_subparsers(dest="create_kind", metavar="KIND")

    def add(name: str, help_text: str, aliases: list[str] | None = None) -> argparse.ArgumentParser:
        c = kinds.add_parser(name, parents=common, aliases=aliases or [], help=help_text, description=help_text)
        c.set_defaults(handler=f"orchestrator.cli.create:cmd_create_{name.replace('-', '_')}")
        c.add_argument("name", metavar="NAME")
        output_option(c)
        dry_run_option(c)
        return c

    add("namespace", "create a namespace", ["ns"])
    c = add("deployment", "create a deployment running --image", ["deploy"])
    c.add_argument("--image", action="append", default=[], metavar="IMAGE", help="container image; repeatable")
    c.add_argument("-r", "--replicas", type=int, default=1, metavar="N", help="number of replicas (default 1)")
    c.add_argument("--port", type=int, default=None, metavar="PORT", help="port the container exposes")
    c.add_argument("cmd", nargs="*", metavar="-- COMMAND [ARG...]", help="the container's command, after --")
    c.set_defaults(trailing="cmd", intermixed="cmd")
    c = add("configmap", "create a configmap from literals, files or env files", ["cm"])
    _data_flags(c)
    s = kinds.add_parser("secret", parents=common, help="create a secret (generic, tls or docker-registry)")
    types = s.add_subparsers(dest="secret_type", metavar="TYPE", required=True)
    for name, help_text in (("generic", "a secret from literals, files or env files"),
                            ("tls", "a TLS secret from --cert and --key"),
                            ("docker-registry", "a secret for pulling images from a registry")):
        t = types.add_parser(name, parents=common, help=help_text, description=help_text)
        t.set_defaults(handler=f"orchestrator.cli.create:cmd_create_secret_{name.replace('-', '_')}")
        t.add_argument("name", metavar="NAME")
        output_option(t)
        dry_run_option(t)
        if name == "generic":
            _data_flags(t)
            t.add_argument("--type", dest="type", metavar="TYPE", help="the secret's type (default Opaque)")
        elif name == "tls":
            t.add_argument("--cert", required=True, metavar="PATH", help="PEM certificate file")
            t.add_argument("--key", required=True, metavar="PATH", help="PEM private key file")
        else:
            t.add_argument("--docker-server", default="https://index.docker.io/v1/", metavar="URL")
            t.add_argument("--docker-username", metavar="USER")
            t.add_argument("--docker-password", metavar="PASSWORD")
            t.add_argument("--docker-email", metavar="EMAIL")
            t.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH",
                           help="a .dockerconfigjson file instead of the --docker-* flags")
    sv = kinds.add_parser("service", parents=common, aliases=["svc"],
                          help="create a service (clusterip, nodeport, loadbalancer or externalname)")
    svc_types = sv.add_subparsers(dest="service_type", metavar="TYPE", required=True)
    for name in ("clusterip", "nodeport", "loadbalancer", "externalname"):
        t = svc_types.add_parser(name, parents=common, help=f"a {SERVICE_TYPES[name]} service")
        t.set_defaults(handler="orchestrator.cli.create:cmd_create_service", service_kind=SERVICE_TYPES[name])
        t.add_argument("name", metavar="NAME")
        output_option(t)
        dry_run_option(t)
        if name == "externalname":
            t.add_argument("--external-name", required=True, metavar="DNS-NAME")
        else:
            t.add_argument("--tcp", action="append", default=[], metavar="PORT[:TARGET]",
                           help="a port, optionally with its target port; repeatable")
        if name == "clusterip":
            t.add_argument("--clusterip", metavar="IP", help='the cluster IP, or "None" for a headless service')
        if name == "nodeport":
            t.add_argument("--node-port", type=int, default=None, metavar="PORT")
    c = add("job", "create a job running --image")
    c.add_argument("--image", metavar="IMAGE")
    c.add_argument("--from", dest="from_", metavar="cronjob/NAME")
    c.add_argument("cmd", nargs="*", metavar="-- COMMAND [ARG...]")
    c.set_defaults(trailing="cmd", intermixed="cmd")


def _data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-literal", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    p.add_argument("--from-file", action="append", default=[], metavar="[KEY=]PATH",
                   help="a file (key: its name) or a directory (each regular file); repeatable")
    p.add_argument("--from-env-file", action="append", default=[], metavar="PATH",
                   help="KEY=VALUE lines; repeatable")


def submit(args: argparse.Namespace, obj: dict[str, Any], kind: Kind) -> int:
    """Create `obj` (or only print it with --dry-run=client) and print the result."""
    if args.dry_run == "client":
        output.show(obj, kind, "created", args.output, args.dry_run)
        return 0
    with output.connect(args) as client:
        ns = client.namespace if kind.namespaced else None
        body = {k: v for k, v in obj.items() if k != "status"}
        created = client.request("POST", client.path(kind, ns), body, params=output.dry_run_params(args.dry_run))
    output.show(created, kind, "created", args.output, args.dry_run)
    return 0


def _with_namespace(args: argparse.Namespace, obj: dict[str, Any]) -> dict[str, Any]:
    if getattr(args, "namespace", None):
        obj["metadata"]["namespace"] = args.namespace
    return obj


def cmd_create_namespace(args: argparse.Namespace) -> int:
    return submit(args, build_namespace(args.name), resolve("namespaces"))


def cmd_create_deployment(args: argparse.Namespace) -> int:
    if getattr(args, "before_dash", None) or (args.cmd and not getattr(args, "dashdash", False)):
        raise output.CliError("exactly one NAME is required; the container's command goes after --")
    obj = build_deployment(args.name, args.image, args.replicas, args.port, args.cmd)
    return submit(args, _with_namespace(args, obj), resolve("deployments"))


def cmd_create_configmap(args: argparse.Namespace) -> int:
    data = sources_data(args.from_literal, args.from_file, args.from_env_file)
    return submit(args, _with_namespace(args, build_configmap(args.name, data)), resolve("configmaps"))


def cmd_create_secret_generic(args: argparse.Namespace) -> int:
    data = sources_data(args.from_literal, args.from_file, args.from_env_file)
    return submit(args, _with_namespace(args, build_secret(args.name, data, args.type)), resolve("secrets"))


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise output.CliError(f'{flag}: cannot read "{path}": {e.strerror or e}') from None


def cmd_create_secret_tls(args: argparse.Namespace) -> int:
    obj = build_tls_secret(args.name, _read(args.cert, "--cert"), _read(args.key, "--key"))
    return submit(args, _with_namespace(args, obj), resolve("secrets"))


def cmd_create_secret_docker_registry(args: argparse.Namespace) -> int:
    if args.from_file:
        data = sources_data([], args.from_file, [])
        obj = build_secret(args.name, data, "kubernetes.io/dockerconfigjson")
    else:
        missing = [f for f, v in (("--docker-username", args.docker_username),
                                  ("--docker-password", args.docker_password)) if not v]
        if missing:
            raise output.CliError(f"missing {', '.join(missing)} (or give --from-file=.dockerconfigjson=PATH)")
        obj = build_docker_registry_secret(args.name, args.docker_server, args.docker_username,
                                           args.docker_password, args.docker_email)
    return submit(args, _with_namespace(args, obj), resolve("secrets"))


def cmd_create_service(args: argparse.Namespace) -> int:
    obj = build_service(args.name, args.service_kind, getattr(args, "tcp", []), getattr(args, "clusterip", None),
                        getattr(args, "node_port", None), getattr(args, "external_name", None))
    return submit(args, _with_namespace(args, obj), resolve("services"))


def cmd_create_job(args: argparse.Namespace) -> int:
    try:
        kind = resolve("jobs")
    except UnknownKind:
        raise output.CliError("create job needs the Job kind (batch/v1), which this Dockyard does not serve") from None
    if args.from_:
        raise output.CliError("--from: CronJobs are not served, so a job cannot be created from one")
    if not args.image:
        raise output.CliError('required flag(s) "image" not set')
    return submit(args, _with_namespace(args, build_job(args.name, args.image, args.cmd)), kind)


def cmd_create_files(args: argparse.Namespace) -> int:
    """`create -f FILE`: POST every manifest; a failure is reported and the rest still created."""
    if not args.filename:
        raise output.CliError("create needs a KIND (namespace, deployment, configmap, secret, job) or -f FILE")
    docs = manifests.load(args.filename, recursive=args.recursive)
    failed = False
    with output.connect(args) as client:
        for m in docs:
            ns = (m.namespace or client.namespace) if m.kind.namespaced else None
            if args.dry_run == "client":
                output.show(m.obj, m.kind, "created", args.output, args.dry_run)
                continue
            try:
                created = client.request("POST", client.path(m.kind, ns), m.obj,
                                         params=output.dry_run_params(args.dry_run))
            except ConnectionFailed:
                raise
            except ApiError as e:
                output.report(e)
                failed = True
                continue
            output.show(created, m.kind, "created", args.output, args.dry_run)
    return 1 if failed else 0
