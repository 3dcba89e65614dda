"""Options every `dockyard` command module shares: the global options and the option types.

Global options (`--kubeconfig`, `--context`, `-n/--namespace`) are accepted before or after
the subcommand: `orchestrator.cli.main` declares them on the root parser with
``global_options(suppress=False)``, and every subcommand (those of main and those a command
module adds in its `register`) takes ``global_options(suppress=True)`` as a parent, whose
defaults are suppressed, so a value given in either place wins and an absent one does not
overwrite the other.

The option types (`host_port`, `non_negative_int`, `seconds`) turn a bad value into an
argparse usage error (exit 2) with one line saying what was expected.

This module imports nothing from the rest of the CLI, so `cli.main` and the command modules
it registers both import it, and no command module imports `cli.main`.
"""

from __future__ import annotations

import argparse


def global_options(suppress: bool) -> argparse.ArgumentParser:
    """A parent parser holding the global options (defaults suppressed on subcommands)."""
    p = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else None
    g = p.add_argument_group("global options")
    g.add_argument("--kubeconfig", metavar="FILE", default=default,
                   help="client config (default $DOCKYARD_CONFIG or ~/.dockyard/config)")
    g.add_argument("--context", metavar="NAME", default=default, help="context of the config to use")
    g.add_argument("-n", "--namespace", metavar="NS", default=default, help="namespace to work in")
    return p


# -- option types ------------------------------------------------------------------------


def host_port(value: str) -> str:
    """`HOST:PORT` (HOST may be empty or a bracketed IPv6 address); returned unchanged."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise argparse.ArgumentTypeError(f"IPv6 addresses need brackets: [ADDR]:PORT, got {value!r}")
    return value


def non_negative_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {n}")
    return n


def seconds(value: str) -> float:
    """Seconds as a number, optionally with an `s` suffix (`10`, `2.5`, `30s`)."""
    text = value[:-1] if value.endswith("s") else value
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value!r}")
    return n
