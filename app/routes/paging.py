"""Offset paging for list pages, shaped for the govukPagination macro."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request, url_for


@dataclass
class Page:
    items: list
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first_index(self) -> int:
        return 0 if self.total == 0 else (self.number - 1) * self.per_page + 1

    @property
    def last_index(self) -> int:
        return min(self.total, self.number * self.per_page)

    def pagination(self) -> dict | None:
        """Parameters for govukPagination, keeping the current filters in each link."""
        if self.pages <= 1:
            return None
        # flat=False: a date filter sends day, month and year under one name; keep all three.
        args = request.args.to_dict(flat=False)

        def link(n: int) -> str:
            return url_for(request.endpoint, **(request.view_args or {}), **(args | {"page": n}))

        params: dict = {"items": []}
        if self.number > 1:
            params["previous"] = {"href": link(self.number - 1)}
        if self.number < self.pages:
            params["next"] = {"href": link(self.number + 1)}
        shown = sorted({1, self.pages, self.number - 1, self.number, self.number + 1} & set(range(1, self.pages + 1)))
        previous = 0
        for n in shown:
            if n - previous > 1:
                params["items"].append({"ellipsis": True})
            params["items"].append({"number": n, "href": link(n), "current": n == self.number})
            previous = n
        return params


def paginate(query, per_page: int = 50) -> Page:
    try:
        number = max(1, int(request.args.get("page", "1")))
    except ValueError:
        number = 1
    total = query.count()
    items = list(query.paginate(number, per_page))
    return Page(items=items, number=number, per_page=per_page, total=total)


def is_partial() -> bool:
    """htmx asked for a part of the page (not a history restore, which needs the whole page)."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-History-Restore-Request")


def render_list(template: str, partial: str, **context):
    """One route, two renderings: the whole page, or only its results when htmx asks (HX-Request)."""
    from flask import make_response, render_template

    is_htmx = is_partial()
    if is_htmx and context.get("has_errors"):
        # The error summary belongs at the top of the page: load the whole page instead of the results.
        response = make_response("", 204)
        response.headers["HX-Redirect"] = request.full_path
        return response
    response = make_response(render_template(partial if is_htmx else template, is_partial=is_htmx, **context))
    response.headers["Vary"] = "HX-Request"
    return response
