"""API key administration: list, add (check, confirm, shown once), revoke.

Keys let other systems into the API, so managing them is configuration: MANAGE_CONFIG.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for

from app.access import requires
from app.domain.api_keys import SCOPES, ApiKey, create_api_key, revoke_api_key
from app.domain.errors import DomainError
from app.domain.users import Permission
from app.forms.api_keys import ApiKeyForm
from app.forms.settings import ConfirmForm
from app.routes import client_ip
from app.routes.add_journey import answers_form, forget_answers, keep_answers, waiting_form

bp = Blueprint("api_keys", __name__, url_prefix="/admin/api-keys")
MANAGE = Permission.MANAGE_CONFIG
PENDING = "pending_api_key"


def _key(key_id: int) -> ApiKey:
    key = ApiKey.get_or_none(ApiKey.id == key_id)
    if key is None:
        abort(404)
    return key


@bp.get("")
@requires(MANAGE)
def list_keys():
    keys = list(ApiKey.select().order_by(ApiKey.revoked_at.is_null(False), ApiKey.created_at.desc()))
    return render_template("api_keys/list.html", keys=keys, scopes=SCOPES)


@bp.route("/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_key():
    form = answers_form(ApiKeyForm, PENDING)
    if form.validate_on_submit():
        keep_answers(PENDING)
        return redirect(url_for("api_keys.check_key"))
    return render_template("api_keys/form.html", form=form)


@bp.route("/add/check", methods=["GET", "POST"])
@requires(MANAGE)
def check_key():
    form = waiting_form(ApiKeyForm, PENDING)
    if form is None:
        return redirect(url_for("api_keys.add_key"))
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            key, secret = create_api_key(g.user, form.name.data, form.scopes.data, ip_address=client_ip())
        except DomainError as exc:
            flash(exc.message, "info")
            return redirect(url_for("api_keys.add_key"))
        forget_answers(PENDING)
        response = render_template("api_keys/created.html", key=key, secret=secret, scopes=SCOPES)
        # The only page that ever holds the key: keep it out of every cache and history.
        return response, 200, {"Cache-Control": "no-store"}
    rows = [
        ("Name", form.name.data),
        ("What the key may do", "; ".join(SCOPES[s] for s in form.scopes.data)),
    ]
    return render_template("api_keys/check.html", rows=rows, confirm=confirm)


@bp.route("/<int:key_id>/revoke", methods=["GET", "POST"])
@requires(MANAGE)
def revoke_key(key_id):
    key = _key(key_id)
    if key.revoked:
        flash(f"The key {key.name} is already revoked", "info")
        return redirect(url_for("api_keys.list_keys"))
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            revoke_api_key(key, g.user, ip_address=client_ip())
        except DomainError as exc:
            flash(exc.message, "info")
        else:
            flash(f"API key {key.name} revoked. Systems using it can no longer call the API", "success")
        return redirect(url_for("api_keys.list_keys"))
    return render_template("api_keys/revoke.html", key=key, form=form)
