"""The staff home page: where a signed-in user starts."""

from __future__ import annotations

from flask import Blueprint, render_template

from app.access import signed_in

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.get("")
@signed_in
def home():
    return render_template("staff/home.html")
