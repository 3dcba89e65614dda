"""Tables for `dockyard get`: the kind's printer columns laid out as plain text.

What each kind prints (columns, cell values) is its printer (`Kind.printer`, in the kind's
module under `objects/resources/`), the same definitions the API's server-side Tables send
to kubectl; this module only picks the
columns `dockyard get` shows (priority 0, plus the `get_wide` ones with `-o wide`), adds
the NAMESPACE column for `-A` and the `kind/` name prefix for `get all`, and renders.

`render` lays rows out with rich (no box, no wrapping, left aligned, three spaces between
columns) and strips trailing blanks, giving the same plain, `awk`-friendly text whether or
not stdout is a terminal. Styling is deliberately absent: scripts parse this output.
Column names and cell conventions (`<none>`, `READY 1/2`, `AGE 3m12s`) follow kubectl so
habits and scripts carry over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..objects import Obj, printers
from ..objects.kinds import Kind


def now_utc() -> datetime:
    return datetime.now(UTC)


def _shown(kind: Kind, wide: bool) -> list[tuple[int, printers.Column]]:
    return [(i, c) for i, c in enumerate(kind.printer.columns) if c.shown(wide)]


def headers(kind: Kind, wide: bool = False, all_namespaces: bool = False) -> list[str]:
    cols = [c.header for _, c in _shown(kind, wide)]
    return (["NAMESPACE"] + cols) if all_namespaces and kind.namespaced else list(cols)


def row(
    kind: Kind,
    obj: Obj,
    now: datetime,
    wide: bool = False,
    all_namespaces: bool = False,
    name_prefix: str = "",
) -> list[str]:
    """One table row; `name_prefix` (`pod/`) is put before the NAME cell (for `get all`)."""
    shown = _shown(kind, wide)
    every = kind.printer.cells(obj, now)
    cells = [str(every[i]) for i, _ in shown]
    names = [c.header for _, c in shown]
    if name_prefix and "NAME" in names:
        i = names.index("NAME")
        cells[i] = name_prefix + cells[i]
    if all_namespaces and kind.namespaced:
        cells = [str((obj.get("metadata") or {}).get("namespace") or "")] + cells
    return cells


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    show_header: bool = True,
    min_widths: Sequence[int] | None = None,
) -> str:
    """Plain aligned text (no trailing newline); columns at least `min_widths` wide."""
    table = Table(
        box=None,
        show_header=show_header,
        show_edge=False,
        pad_edge=False,
        padding=(0, 3, 0, 0),
        header_style="",
        collapse_padding=False,
    )
    for i, h in enumerate(header):
        width = min_widths[i] if min_widths and i < len(min_widths) else None
        table.add_column(Text(h), no_wrap=True, overflow="ignore", justify="left", min_width=width)
    for r in rows:
        table.add_row(*(Text(str(c)) for c in r))
    console = Console(
        width=100_000, no_color=True, color_system=None, force_terminal=False, highlight=False, markup=False
    )
    with console.capture() as cap:
        console.print(table)
    return "\n".join(line.rstrip() for line in cap.get().splitlines())


def column_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    widths = [len(h) for h in header]
    for r in rows:
        for i, c in enumerate(r):
            if i < len(widths):
                widths[i] = max(widths[i], len(c))
    return widths
