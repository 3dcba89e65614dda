"""API errors, shaped as Kubernetes `metav1.Status` bodies.

Every layer below the HTTP handlers raises `ApiError`; handlers turn it into a Status
response, and the client turns a Status response back into an `ApiError`, so callers on
both sides see the same exception with the same reason and code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict[str, Any]:
        """The `metav1.Status` body, as kube-apiserver encodes it (`status_body`)."""
        return status_body("Failure", self.message, self.reason, self.details, self.code)

    @classmethod
    def from_status(cls, body: dict[str, Any], code: int) -> ApiError:
        return cls(
            int(body.get("code") or code),
            str(body.get("reason") or "Unknown"),
            str(body.get("message") or f"HTTP {code}"),
            body.get("details") or {},
        )


# metav1.Status, StatusDetails and StatusCause in the order of their Go struct fields (the
# order encoding/json writes them in); every one of these fields is `omitempty`.
_DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def status_body(status: str, message: str, reason: str, details: dict[str, Any] | None, code: int) -> dict[str, Any]:
    """A `metav1.Status` as kube-apiserver writes it: kind, apiVersion, metadata, status,
    message, reason, details, code, in that order, each empty field left out (`"group":""`
    for the core group, no `details` when they say nothing). Details keys Kubernetes does
    not define are kept after its own."""
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}}
    if status:
        body["status"] = status
    if message:
        body["message"] = message
    if reason:
        body["reason"] = reason
    shown = status_details(details or {})
    if shown:
        body["details"] = shown
    if code:
        body["code"] = code
    return body


def status_details(details: dict[str, Any]) -> dict[str, Any]:
    """StatusDetails in Kubernetes' field order, empty fields (and causes' empty fields) left out."""
    out: dict[str, Any] = {}
    for key in _DETAILS_ORDER:
        value = details.get(key)
        if key == "causes" and isinstance(value, list):
            value = [_cause(c) if isinstance(c, dict) else c for c in value]
        if value not in (None, "", 0, [], {}):
            out[key] = value
    for key, value in details.items():
        if key not in out and key not in _DETAILS_ORDER and value not in (None, "", [], {}):
            out[key] = value
    return out


def _cause(cause: dict[str, Any]) -> dict[str, Any]:
    out = {key: cause[key] for key in _CAUSE_ORDER if cause.get(key) not in (None, "")}
    out.update((k, v) for k, v in cause.items() if k not in _CAUSE_ORDER and v not in (None, ""))
    return out


def not_found(kind_resource: str, name: str, group: str = "") -> ApiError:
    res = f"{kind_resource}.{group}" if group else kind_resource
    return ApiError(
        404, "NotFound", f'{res} "{name}" not found', {"name": name, "group": group, "kind": kind_resource}
    )


NOT_FOUND_MESSAGE = "the server could not find the requested resource"


def path_not_found() -> ApiError:
    """404 for a path that names no API resource: kube-apiserver's body for it."""
    return ApiError(404, "NotFound", NOT_FOUND_MESSAGE)


def resource_not_served(group: str, resource: str) -> ApiError:
    """404 for a resource (or subresource) this server does not serve: Kubernetes' message,
    with the resource named in the details (`kind`, and `group` outside the core group)."""
    return ApiError(404, "NotFound", NOT_FOUND_MESSAGE, {"group": group, "kind": resource})


def already_exists(kind_resource: str, name: str, group: str = "") -> ApiError:
    res = f"{kind_resource}.{group}" if group else kind_resource
    return ApiError(
        409,
        "AlreadyExists",
        f'{res} "{name}" already exists',
        {"name": name, "group": group, "kind": kind_resource},
    )


def conflict(kind_resource: str, name: str, group: str = "") -> ApiError:
    res = f"{kind_resource}.{group}" if group else kind_resource
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "group": group, "kind": kind_resource},
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> ApiError:
    """422 Invalid. `causes` are {"field", "reason", "message"} dicts (FieldError.cause())."""
    text = "; ".join(f"{c['field']}: {c['message']}" for c in causes)
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {text}',
        {"name": name, "group": group, "kind": kind, "causes": causes},
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, resource: str, name: str = "") -> ApiError:
    what = f'{resource} "{name}"' if name else resource
    return ApiError(403, "Forbidden", f'{what} is forbidden: User "{user}" cannot {verb} it')


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


# Kubernetes defines no StatusReason for HTTP 507; this one names the HTTP status it goes with.
REASON_INSUFFICIENT_STORAGE = "InsufficientStorage"


def insufficient_storage(message: str) -> ApiError:
    """507 Insufficient Storage: the master cannot store the write (its disk is full).

    The reason is "InsufficientStorage" (`REASON_INSUFFICIENT_STORAGE`): Kubernetes has no
    reason for this status, so clients that only know Kubernetes reasons see an unknown
    reason with code 507. Retrying the same write helps only once space has been freed.
    """
    return ApiError(507, REASON_INSUFFICIENT_STORAGE, message)


def service_unavailable(message: str, retry_after_seconds: int | None = None) -> ApiError:
    """503 ServiceUnavailable; `retry_after_seconds` goes in `details.retryAfterSeconds`
    (what Kubernetes clients read as Retry-After)."""
    details = {"retryAfterSeconds": int(retry_after_seconds)} if retry_after_seconds is not None else None
    return ApiError(503, "ServiceUnavailable", message, details)


def internal_error(message: str) -> ApiError:
    """500 InternalError with a message that says what failed (never a bare "internal error")."""
    return ApiError(500, "InternalError", message)


def invalid_parameter(name: str, value: str, why: str) -> ApiError:
    """400 BadRequest for a query parameter that does not parse; the parameter is named."""
    shown = value if len(value) <= 100 else value[:100] + "..."
    text = f"Invalid value: {json.dumps(shown)}: {why}"
    return ApiError(400, "BadRequest", f"{name}: {text}",
                    {"causes": [{"field": name, "reason": "FieldValueInvalid", "message": text}]})


def request_entity_too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(media_type: str, accepted: Sequence[str], hint: str = "") -> ApiError:
    sent = f" ({media_type})" if media_type else ""
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format{sent} - accepted media types include: "
        f"{', '.join(accepted)}{hint}",
    )


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """504 for a resourceVersion newer than the store's (clients relist without one)."""
    return ApiError(
        504,
        "Timeout",
        f"Too large resource version: {requested}, current: {current}",
        {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
         "retryAfterSeconds": 1},
    )
