"""Argument parsing, global options, delegation to the server/agent and the exit-code contract."""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import pytest

from orchestrator.cli import main as cli
from orchestrator.cli.main import build_parser, finish_args, main


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["get"],
        ["get", "--bogus-flag"],
        ["bogus-command"],
        ["apply"],
        ["get", "po", "-o", "table"],
        ["scale", "deploy/web"],
        ["scale", "deploy/web", "--replicas", "x"],
        ["agent", "--server", "https://m:6443"],
        ["up", "--listen", "6443"],
        ["up", "--backoff-base", "soon"],
        ["config"],
        ["config", "use-context"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().out == ""


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "apply" in capsys.readouterr().out


def parse(argv: list[str]) -> argparse.Namespace:
    return finish_args(build_parser().parse_args(argv))


def test_global_options_before_or_after_the_subcommand() -> None:
    a = parse(["--kubeconfig", "k1", "-n", "prod", "get", "po"])
    assert (a.kubeconfig, a.namespace, a.context) == ("k1", "prod", None)
    b = parse(["get", "po", "--context", "c2", "-n", "dev"])
    assert (b.kubeconfig, b.namespace, b.context) == (None, "dev", "c2")
    c = parse(["-n", "prod", "get", "po", "--kubeconfig", "k3"])
    assert (c.kubeconfig, c.namespace) == ("k3", "prod")
    d = parse(["config", "get-contexts", "--kubeconfig", "k4"])
    assert d.kubeconfig == "k4"


def test_up_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKYARD_CONFIG", str(tmp_path / "cfg"))
    a = parse(["up"])
    assert a.data_dir == "/var/lib/dockyard" and a.listen == "0.0.0.0:6443"
    assert a.write_kubeconfig == str(tmp_path / "cfg") and a.no_agent is False and a.node_name is None
    assert (a.backoff_base, a.backoff_cap, a.heartbeat) == (10.0, 300.0, 2.0)
    assert a.node_status_period == 60.0 and a.cleanup_on_exit is False
    b = parse(["up", "--listen", "127.0.0.1:7443", "--no-agent", "--heartbeat", "1s", "--write-kubeconfig", "k"])
    assert (b.listen, b.no_agent, b.heartbeat, b.write_kubeconfig) == ("127.0.0.1:7443", True, 1.0, "k")
    m = parse(["master", "--listen", "[::1]:6443", "--advertise-address", "10.0.0.1"])
    assert m.listen == "[::1]:6443" and m.advertise_address == "10.0.0.1"


def test_agent_options() -> None:
    a = parse(["agent", "--server", "https://m:6443", "--token", "K10abc::node:x"])
    assert (a.server, a.token, a.name, a.node_ip) == ("https://m:6443", "K10abc::node:x", None, None)
    assert a.data_dir == "/var/lib/dockyard-agent" and a.docker_url is None
    assert (a.backoff_base, a.backoff_cap, a.heartbeat) == (10.0, 300.0, 2.0)
    assert a.node_status_period == 60.0 and a.cleanup_on_exit is False


def test_delegation_imports_lazily_and_returns_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[argparse.Namespace] = []
    fake = types.ModuleType("orchestrator.server")
    fake.main_master = lambda args: seen.append(args) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "orchestrator.server", fake)
    assert main(["master", "--data-dir", "/tmp/x"]) == 7
    assert seen[0].data_dir == "/tmp/x"


def test_missing_delegate_is_one_error_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "agent.main", None)  # makes the import fail
    assert main(["agent", "--server", "https://m", "--token", "t"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_missing_config_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kubeconfig", str(tmp_path / "none"), "get", "po"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: no cluster config at ")


def test_connection_failure_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    assert main(["--kubeconfig", str(cfg), "get", "po"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot reach the Dockyard API")


def test_version_without_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--kubeconfig", str(tmp_path / "none"), "version"]) == 0
    assert capsys.readouterr().out.startswith("Client Version: v")
    assert main(["version", "--client"]) == 0


def test_host_port_validation() -> None:
    assert cli.host_port(":6443") == ":6443"
    with pytest.raises(argparse.ArgumentTypeError):
        cli.host_port("::1:6443")
    with pytest.raises(argparse.ArgumentTypeError):
        cli.host_port("h:70000")


def test_agent_takes_its_join_token_from_the_environment(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.cli import main as cli

    monkeypatch.delenv("DOCKYARD_TOKEN", raising=False)
    assert cli.main(["agent", "--server", "https://127.0.0.1:1"]) == 2
    assert "join token is required" in capsys.readouterr().err
    seen = {}
    monkeypatch.setenv("DOCKYARD_TOKEN", "K10abc::node:s3cret")
    monkeypatch.setattr(cli, "load_handler", lambda spec: lambda args: seen.setdefault("token", args.token) and 0)
    assert cli.main(["agent", "--server", "https://127.0.0.1:1"]) == 0
    assert seen["token"] == "K10abc::node:s3cret"


def test_no_command_module_imports_cli_main() -> None:
    """cli.main imports the command modules; they take what they share from cli.options."""
    from tests.support.imports import imports_of

    cli_dir = Path(cli.__file__).parent
    offenders = [path.name for path in sorted(cli_dir.glob("*.py"))
                 if path.name != "main.py" and "orchestrator.cli.main" in imports_of(path)]
    assert offenders == []


def test_the_option_types_live_in_cli_options() -> None:
    from orchestrator.cli import options

    assert cli.host_port is options.host_port and cli.seconds is options.seconds
    assert options.seconds("30s") == 30.0
    with pytest.raises(argparse.ArgumentTypeError):
        options.non_negative_int("-1")
