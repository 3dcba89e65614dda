"""`dockyard config`: contexts table, switching, current context and the redacted view."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml

from orchestrator.cli.main import main

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "lab",
    "clusters": [
        {"name": "lab", "cluster": {"server": "https://10.0.0.1:6443", "certificate-authority-data": "Q0E="}},
        {"name": "prod", "cluster": {"server": "https://10.0.1.1:6443"}},
    ],
    "users": [{"name": "admin", "user": {"token": "s3cret-token"}}],
    "contexts": [
        {"name": "lab", "context": {"cluster": "lab", "user": "admin", "namespace": "default"}},
        {"name": "prod", "context": {"cluster": "prod", "user": "admin"}},
    ],
}


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump(KUBECONFIG))
    path.chmod(0o600)
    monkeypatch.setenv("DOCKYARD_CONFIG", str(path))
    return path


def test_get_contexts(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "get-contexts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
    assert lines[1].split() == ["*", "lab", "lab", "admin", "default"]
    assert lines[2].split() == ["prod", "prod", "admin"]
    assert main(["config", "get-contexts", "-o", "name"]) == 0
    assert capsys.readouterr().out == "lab\nprod\n"


def test_use_context_rewrites_current_context_and_keeps_mode(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "use-context", "prod"]) == 0
    assert capsys.readouterr().out == 'Switched to context "prod".\n'
    data = yaml.safe_load(cfg.read_text())
    assert data["current-context"] == "prod"
    assert data["users"] == KUBECONFIG["users"] and data["clusters"] == KUBECONFIG["clusters"]
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert main(["config", "current-context"]) == 0
    assert capsys.readouterr().out == "prod\n"


def test_use_unknown_context_fails(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = cfg.read_text()
    assert main(["config", "use-context", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err and len(err.splitlines()) == 1
    assert cfg.read_text() == before


def test_explicit_kubeconfig_flag(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    other.write_text(yaml.safe_dump({**KUBECONFIG, "current-context": "prod"}))
    assert main(["--kubeconfig", str(other), "config", "current-context"]) == 0
    assert capsys.readouterr().out == "prod\n"


def test_view_redacts_secrets(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "view"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and "Q0E=" not in out
    shown = yaml.safe_load(out)
    assert shown["users"][0]["user"]["token"] == "REDACTED"
    assert main(["config", "view", "--raw"]) == 0
    assert "s3cret-token" in capsys.readouterr().out


def test_set_context_namespace(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "set-context", "--current", "--namespace", "team"]) == 0
    data = yaml.safe_load(cfg.read_text())
    assert data["contexts"][0]["context"]["namespace"] == "team"


def test_current_context_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({**KUBECONFIG, "current-context": ""}))
    monkeypatch.setenv("DOCKYARD_CONFIG", str(path))
    assert main(["config", "current-context"]) == 1
    assert capsys.readouterr().err == "error: current-context is not set\n"
