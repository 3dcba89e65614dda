"""Server-side defaults, applied in place before validation (as the API server does on create).

Each kind's defaults are its strategy's `defaults(obj)` hook, in the kind's module under
`objects/resources/`; `apply_defaults(kind, obj)` is the entry point by kind name and does
nothing for kinds without defaults (or for a body that is not an object). Pod specs are
defaulted by `podspec.pod_spec_defaults`, which `podspec.pod_template_spec_defaults` reuses for
ReplicaSet and Deployment templates, so a controller-created pod and a template compare equal
after defaulting.

The values are those of Kubernetes (pkg/apis/core/v1/defaults.go and apps/v1), e.g.
`restartPolicy: Always`, `terminationGracePeriodSeconds: 30`, probe `periodSeconds: 10`,
and `imagePullPolicy: Always` only for `:latest` or untagged images. Defaulting never fills
in a missing workload `selector`: apps/v1 requires one, so validation reports it instead.
Values of the wrong type are left alone for validation to report.

The pod-spec names below are re-exported from `podspec`, their home.
"""

from __future__ import annotations

from typing import Any

from . import validation
from .podspec import (
    DEFAULT_SCHEDULER_NAME,
    DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS,
    DEFAULT_VOLUME_MODE,
    container_defaults,
    default_image_pull_policy,
    image_tag,
    pod_spec_defaults,
    pod_template_spec_defaults,
    probe_defaults,
    qos_class,
)

__all__ = [
    "DEFAULT_SCHEDULER_NAME",
    "DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS",
    "DEFAULT_VOLUME_MODE",
    "apply_defaults",
    "container_defaults",
    "default_image_pull_policy",
    "image_tag",
    "pod_spec_defaults",
    "pod_template_spec_defaults",
    "probe_defaults",
    "qos_class",
]


def apply_defaults(kind: str, obj: dict[str, Any]) -> None:
    """Fill in Kubernetes defaults for `kind` in `obj`, in place (the kind's strategy's
    `defaults`; the same lookup as `validation`'s). Idempotent."""
    if isinstance(obj, dict):
        validation.strategy_for(kind).defaults(obj)
