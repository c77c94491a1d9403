"""Add → check your answers → confirm, shared by every "add" journey.

The answers wait in the session between the form and the check page (never in hidden
fields), so "Change" on the check page brings the filled-in form back, and the confirm
step re-validates exactly what the user saw.
"""

from __future__ import annotations

from flask import request, session
from werkzeug.datastructures import MultiDict

from app.domain.errors import DomainError


def answers_form(form_class, key: str):
    """The add form: blank, or refilled with the waiting answers when coming back through "Change"."""
    waiting = session.get(key)
    if request.method == "GET" and waiting and request.args.get("change"):
        return form_class(formdata=MultiDict(waiting))
    return form_class()


def keep_answers(key: str) -> None:
    data = request.form.to_dict(flat=False)
    data.pop("csrf_token", None)
    session[key] = data


def waiting_form(form_class, key: str, prepare=None):
    """The waiting answers as a validated form, or None if there are none or they no longer pass."""
    waiting = session.get(key)
    if not waiting:
        return None
    form = form_class(formdata=MultiDict(waiting), meta={"csrf": False})
    if prepare:
        prepare(form)
    return form if form.validate() else None


def forget_answers(key: str) -> None:
    session.pop(key, None)


def show_domain_error(form, exc: DomainError, *, aliases: dict | None = None, fallback: str = "submit") -> None:
    """Put a domain error on the form field it names (or the fallback field) for the error summary."""
    name = (aliases or {}).get(exc.field, exc.field) if exc.field else None
    target = getattr(form, name, None) if name else None
    if target is None:
        target = getattr(form, fallback)
    target.errors = list(target.errors) + [exc.message]
