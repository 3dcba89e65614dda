"""Writing files that hold secrets (keys, tokens, kubeconfigs, credentials).

`write_private` replaces a file atomically: the data goes to a temporary file in the same
directory, created with the final mode (0600 unless told otherwise, whatever the umask),
flushed to disk, then renamed over the target. Readers see the old file or the new one,
never a partial or briefly world-readable one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_private(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Atomically replace `path` with `data`, readable by the owner only (or `mode`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
