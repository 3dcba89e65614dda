"""Horizontal pod autoscaling: the replica algorithm (`replicas`) and metric sources (`metrics`).

The controller that ties them to the API lives in `orchestrator.controllers.hpa`.
"""
