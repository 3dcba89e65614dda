"""Local images built from the host's static busybox, so a node needs no registry.

Two images, both ``FROM scratch`` with ``/bin/busybox`` copied in and its applets installed
as symlinks in ``/bin`` (``sh``, ``httpd``, ``nc``, ``wget``, ``sleep`` …):

* ``dockyard/pause:1``: the pod sandbox. It sleeps forever and exits 0 at once on SIGTERM,
  so stopping a pod never waits for a grace period on the sandbox.
* ``dockyard/busybox:1``: a general-purpose image for examples and tests.

Building is idempotent: an image whose tag already exists is left alone. The build
context lives in a temporary directory; the build itself goes through ``DockerRuntime``
(the only Docker SDK user).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .runtime import PAUSE_IMAGE, DockerRuntime, RuntimeFailure

BUSYBOX_IMAGE = "dockyard/busybox:1"
DEFAULT_BUSYBOX = "/bin/busybox"

PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'


@dataclass(frozen=True)
class ImageRecipe:
    tag: str
    cmd: list[str]
    description: str


RECIPES: tuple[ImageRecipe, ...] = (
    ImageRecipe(PAUSE_IMAGE, ["/bin/sh", "-c", PAUSE_SCRIPT], "pod sandbox (pause)"),
    ImageRecipe(BUSYBOX_IMAGE, ["/bin/sh"], "busybox tools (sh, httpd, nc, wget)"),
)


def dockerfile(cmd: list[str]) -> str:
    return "\n".join(
        [
            "FROM scratch",
            "COPY busybox /bin/busybox",
            'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
            f"CMD {json.dumps(cmd)}",
            "",
        ]
    )


def build_image(runtime: DockerRuntime, recipe: ImageRecipe, busybox: str = DEFAULT_BUSYBOX) -> str:
    """Build one recipe unconditionally; returns the image id."""
    src = Path(busybox)
    if not src.is_file():
        raise RuntimeFailure(f"cannot build {recipe.tag}: {busybox} not found (install busybox-static)")
    with tempfile.TemporaryDirectory(prefix="dockyard-image-") as tmp:
        shutil.copy2(src, Path(tmp) / "busybox")
        (Path(tmp) / "Dockerfile").write_text(dockerfile(recipe.cmd))
        return runtime.build_image(
            tmp, recipe.tag, labels={"dockyard.io/image": recipe.description}
        )


def ensure_images(
    runtime: DockerRuntime,
    busybox: str = DEFAULT_BUSYBOX,
    recipes: tuple[ImageRecipe, ...] = RECIPES,
) -> list[str]:
    """Build the recipes whose tag is missing; returns the tags built now."""
    built: list[str] = []
    for recipe in recipes:
        if runtime.image_exists(recipe.tag):
            continue
        build_image(runtime, recipe, busybox)
        built.append(recipe.tag)
    return built
