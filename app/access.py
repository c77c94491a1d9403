"""Who may use which route.

Every view declares its access with exactly one of these decorators:
  @public                 anyone, signed in or not
  @signed_in              any signed-in staff user (e.g. change password, sign out)
  @requires(Permission.X) a signed-in user whose roles grant X
  @api_key("scope")       a request with a live API key that has the scope (no session;
                          access value "api:<scope>"; failures are JSON 401/403)
`create_app()` refuses to start if any route has no declaration, so nothing is
reachable by accident. The authorisation matrix test reads the same declarations.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from flask import abort, g, jsonify, redirect, request, session, url_for

from app.db import utcnow
from app.domain.users import Permission, User

PUBLIC = "public"
SIGNED_IN = "signed_in"
API_KEY_PREFIX = "api:"


def _declare(view, access):
    view.access = access
    return view


def public(view):
    return _declare(view, PUBLIC)


def signed_in(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("user") is None:
            return _to_sign_in()
        return view(*args, **kwargs)

    return _declare(wrapper, SIGNED_IN)


def requires(permission: Permission):
    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if g.get("user") is None:
                return _to_sign_in()
            if not g.user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        return _declare(wrapper, permission)

    return decorator


def api_key(scope: str):
    """An API route: the caller proves itself with `Authorization: Bearer <key>`, never a cookie."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            from app.domain.api_keys import ApiKeyForbidden, ApiKeyRefused, authenticate_api_key

            try:
                g.api_key = authenticate_api_key(request.headers.get("Authorization"), scope)
            except (ApiKeyRefused, ApiKeyForbidden) as exc:
                return api_error(exc.status, exc.code, exc.message)
            return view(*args, **kwargs)

        return _declare(wrapper, API_KEY_PREFIX + scope)

    return decorator


def api_error(status: int, code: str, message: str, field: str | None = None):
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    response = jsonify({"error": error})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


def _to_sign_in():
    # Only GET targets are safe to return to; the sign-in page checks `next` is local.
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.sign_in", next=target))


def start_session(user: User) -> None:
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["session_version"] = user.session_version
    session["last_seen"] = utcnow().isoformat()


def load_user(idle_minutes: int) -> None:
    """Attach the signed-in user to `g`, ending sessions that are idle, stale or disabled."""
    g.user = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    last_seen = session.get("last_seen")
    now = utcnow()
    if not last_seen or now - datetime.fromisoformat(last_seen) > timedelta(minutes=idle_minutes):
        session.clear()
        session["expired"] = True
        return
    user = User.get_or_none(User.id == user_id)
    if user is None or not user.enabled or session.get("session_version") != user.session_version:
        session.clear()
        return
    session["last_seen"] = now.isoformat()
    g.user = user
