"""The revisioned, watchable key-value store behind the API server.

`base` holds what every backend shares (values, events, errors, the `Watch` handle and the
`Store` protocol); `sqlite` is the default single-master backend.
"""

from .base import (
    DELETE,
    KV,
    PUT,
    Compacted,
    KeyExists,
    KeyNotFound,
    RevisionConflict,
    StorageFull,
    Store,
    StoreApiError,
    StoreClosed,
    StoreError,
    StoreFailure,
    StoreUnavailable,
    Watch,
    WatchEvent,
)
from .sqlite import SQLiteStore

__all__ = [
    "DELETE",
    "KV",
    "PUT",
    "Compacted",
    "KeyExists",
    "KeyNotFound",
    "RevisionConflict",
    "SQLiteStore",
    "StorageFull",
    "Store",
    "StoreApiError",
    "StoreClosed",
    "StoreError",
    "StoreFailure",
    "StoreUnavailable",
    "Watch",
    "WatchEvent",
]
