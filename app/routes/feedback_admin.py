"""Administrators read feedback and, in demo mode, the e-mail outbox."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from app.access import requires
from app.domain.feedback import Feedback
from app.domain.outbox import OutboxMessage
from app.domain.users import Permission
from app.routes.paging import paginate

bp = Blueprint("feedback_admin", __name__, url_prefix="/admin")


@bp.get("/feedback")
@requires(Permission.VIEW_FEEDBACK)
def list_feedback():
    page = paginate(Feedback.select().order_by(Feedback.created_at.desc(), Feedback.id.desc()), per_page=25)
    return render_template("feedback_admin/list.html", page=page)


def _demo_only():
    # Outbox messages hold personal data (receipts); outside the demo, Notify holds the record of delivery.
    if not current_app.config.get("DEMO_MODE"):
        abort(404)


@bp.get("/outbox")
@requires(Permission.VIEW_OUTBOX)
def outbox():
    _demo_only()
    page = paginate(OutboxMessage.select().order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc()))
    return render_template("feedback_admin/outbox.html", page=page)


@bp.get("/outbox/<int:message_id>")
@requires(Permission.VIEW_OUTBOX)
def outbox_message(message_id):
    _demo_only()
    message = OutboxMessage.get_or_none(OutboxMessage.id == message_id)
    if message is None:
        abort(404)
    return render_template("feedback_admin/message.html", message=message)
