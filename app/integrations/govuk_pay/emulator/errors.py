"""GOV.UK Pay's error envelope: {"code", "description"[, "field" | "header"]} with JSON content type."""

from __future__ import annotations

from flask import Response, jsonify

FIREWALL_DESCRIPTION = "Request blocked by security rules. Please consult API documentation for more information."


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, description: str, *, field: str | None = None, header: str | None = None
    ) -> None:
        super().__init__(f"{status} {code} {description}")
        self.status = status
        self.code = code
        self.description = description
        self.field = field
        self.header = header

    def body(self) -> dict[str, str]:
        body = {"code": self.code, "description": self.description}
        if self.field:
            body["field"] = self.field
        if self.header:
            body["header"] = self.header
        return body

    def response(self) -> Response:
        response = jsonify(self.body())
        response.status_code = self.status
        return response


def missing(field: str, code: str = "P0101") -> ApiError:
    return ApiError(400, code, f"Missing mandatory attribute: {field}", field=field)


def invalid(field: str, reason: str, *, status: int = 400, code: str = "P0102") -> ApiError:
    return ApiError(status, code, f"Invalid attribute value: {field}. {reason}", field=field)


def not_found(code: str) -> ApiError:
    return ApiError(404, code, "Not found")


def firewall() -> ApiError:
    return ApiError(400, "P0920", FIREWALL_DESCRIPTION)
