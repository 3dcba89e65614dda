"""Test images, built locally from Debian's static busybox (no registry is reachable)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO_IMAGE = "dockyard/demo-web:1"


def build_demo_image() -> str:
    with tempfile.TemporaryDirectory() as d:
        for f in (Path("/bin/busybox"), ROOT / "deploy/demo/Dockerfile", ROOT / "deploy/demo/index.sh"):
            shutil.copy(f, d)
        subprocess.run(["docker", "build", "-q", "-t", DEMO_IMAGE, d], check=True, capture_output=True)
    return DEMO_IMAGE


def docker_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
