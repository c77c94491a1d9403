"""The staff home page: where a signed-in user starts. Finance users see the dashboard there."""

from __future__ import annotations

from flask import Blueprint, g, render_template

from app.access import signed_in
from app.domain import dashboard
from app.domain.users import Permission

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.get("")
@signed_in
def home():
    figures = dashboard.for_user(g.user) if g.user.can(Permission.VIEW_LEDGER) else None
    return render_template("staff/home.html", dashboard=figures)
