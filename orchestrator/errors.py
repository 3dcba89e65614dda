"""API errors, shaped as Kubernetes `metav1.Status` bodies.

Every layer below the HTTP handlers raises `ApiError`; handlers turn it into a Status
response, and the client turns a Status response back into an `ApiError`, so callers on
both sides see the same exception with the same reason and code.
"""

from __future__ import annotations

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
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body

    @classmethod
    def from_status(cls, body: dict[str, Any], code: int) -> ApiError:
        return cls(
            int(body.get("code") or code),
            str(body.get("reason") or "Unknown"),
            str(body.get("message") or f"HTTP {code}"),
            body.get("details") or {},
        )


def not_found(kind_resource: str, name: str, group: str = "") -> ApiError:
    res = f"{kind_resource}.{group}" if group else kind_resource
    return ApiError(
        404, "NotFound", f'{res} "{name}" not found', {"name": name, "group": group, "kind": kind_resource}
    )


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
