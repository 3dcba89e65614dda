"""Dockyard's control plane: API server, store, controllers, scheduler, CLI."""

__version__ = "0.1.0"
