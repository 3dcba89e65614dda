"""Pod helpers for the controllers: everything public in `orchestrator.objects.pods`, where
they live so that the scheduler and the API can use them too."""

from __future__ import annotations

from ..objects.pods import *  # noqa: F403
