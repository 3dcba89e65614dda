"""Bootstrapping real fleets over SSH: inventory, install, upgrade and removal of nodes.

`ssh` is the only module that talks SSH (paramiko); `inventory` parses and validates
`cluster.yaml`; `install` checks prerequisites, ships a wheelhouse and runs the agent
under systemd or a small supervisor; `upgrade` rolls agents node by node with cordon and
drain. Every failure a user should see is a `BootstrapError` (or its `SSHError` subclass)
whose message names the host it is about.
"""

from __future__ import annotations


class BootstrapError(Exception):
    """Root of the errors of the bootstrap package."""
