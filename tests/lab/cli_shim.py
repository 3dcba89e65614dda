"""`python -m tests.lab.cli_shim ARGS`: the dockyard CLI with the fleet commands registered.

Used by the lab tests only while the main parser does not yet include
`orchestrator.cli.cluster.register`; once it does, the tests call `python -m orchestrator`.
"""

from __future__ import annotations

import sys

from orchestrator.cli import cluster, main


def build_parser():  # type: ignore[no-untyped-def]
    parser = _original()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - the subcommand table
        if "cluster" not in action.choices:
            cluster.register(action)
    return parser


_original = main.build_parser
main.build_parser = build_parser

if __name__ == "__main__":
    sys.exit(main.main(sys.argv[1:]))
