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


def output_option(p: argparse.ArgumentParser, formats: tuple[str, ...] = ("json", "yaml", "name")) -> None:
    """`-o json|yaml|name`: print the object(s) written instead of the `kind/name verb` line."""
    p.add_argument("-o", "--output", choices=formats, default=None, metavar="|".join(formats),
                   help="print the result as " + ", ".join(formats))


def dry_run_option(p: argparse.ArgumentParser) -> None:
    """`--dry-run[=none|client|server]` as kubectl: bare `--dry-run` means client."""
    p.add_argument("--dry-run", nargs="?", const="client", default="none", choices=["none", "client", "server"],
                   metavar="none|client|server",
                   help="client: only print what would be sent; server: the API checks it but stores nothing")


def go_duration(value: str) -> float:
    """A Go duration (`30s`, `1m30s`, `2h`, `500ms`) or plain seconds, as seconds; negative values stay."""
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    text = text.lstrip("+-")
    try:
        return sign * float(text)
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        c = text[i]
        if c.isdigit() or c == ".":
            number += c
            i += 1
            continue
        unit = next((u for u in ("ns", "us", "µs", "ms", "s", "m", "h") if text.startswith(u, i)), None)
        if unit is None or not number:
            raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 2m or 1h, got {value!r}")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number or not text:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 2m or 1h (a unit is needed), got {value!r}")
    return sign * total


GET_FORMATS = ("wide", "yaml", "json", "name")


def get_output(value: str) -> str:
    """`-o` of `get`: wide, yaml, json, name, `jsonpath=TEMPLATE` (kubectl's template syntax) or
    `custom-columns=HEADER:.json.path,…`."""
    if value in GET_FORMATS:
        return value
    for prefix in ("jsonpath=", "custom-columns="):
        if value.startswith(prefix) and value[len(prefix):].strip():
            return value
    raise argparse.ArgumentTypeError(
        f"unable to match a printer suitable for the output format {value!r}, the allowed formats are: "
        "custom-columns=SPEC,json,jsonpath=TEMPLATE,name,wide,yaml")
