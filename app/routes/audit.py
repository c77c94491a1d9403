"""The audit trail viewer (auditors and administrators)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request

from app.access import requires
from app.domain import audit
from app.domain.audit import AuditEvent
from app.domain.users import Permission
from app.forms.audit import AuditFilterForm
from app.routes.paging import paginate, render_list

bp = Blueprint("audit", __name__, url_prefix="/audit")


@bp.get("")
@requires(Permission.VIEW_AUDIT)
def events():
    form = AuditFilterForm(request.args)
    actions = [r.action for r in AuditEvent.select(AuditEvent.action).distinct().order_by(AuditEvent.action)]
    types = [
        r.object_type
        for r in AuditEvent.select(AuditEvent.object_type).distinct().order_by(AuditEvent.object_type)
        if r.object_type
    ]
    form.action.choices = [("", "Anything")] + [
        (a, a.replace("_", " ").replace(".", ": ", 1).capitalize()) for a in actions
    ]
    form.object_type.choices = [("", "Anything")] + [(t, t.replace("_", " ")) for t in types]
    valid = form.validate() if request.args else True
    query = audit.filtered(
        actor=form.actor.data or "" if valid else "",
        action=form.action.data or "" if valid else "",
        object_type=form.object_type.data or "" if valid else "",
        date_from=form.date_from.data if valid else None,
        date_to=form.date_to.data if valid else None,
    )
    page = paginate(query)
    return render_list("audit/events.html", "audit/_results.html", form=form, page=page, has_errors=not valid)


@bp.get("/<int:seq>")
@requires(Permission.VIEW_AUDIT)
def event(seq):
    item = AuditEvent.get_or_none(AuditEvent.seq == seq)
    if item is None:
        abort(404)
    return render_template("audit/event.html", event=item)
