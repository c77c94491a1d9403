"""Staff sign-in, sign-out and password changes."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for

from app.access import public, signed_in, start_session
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.users import SignInFailed, authenticate, change_password
from app.forms.auth import ChangePasswordForm, SignInForm
from app.routes import client_ip

bp = Blueprint("auth", __name__)


def _safe_next(value: str | None) -> str | None:
    # Only paths on this site: never an absolute or protocol-relative URL (open redirect).
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


@bp.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in():
    if g.user is not None:
        return redirect(url_for("staff.home"))
    form = SignInForm()
    expired = session.pop("expired", False)
    if form.validate_on_submit():
        try:
            user = authenticate(
                form.email.data,
                form.password.data,
                ip_address=client_ip(),
                threshold=current_app.config["LOCKOUT_THRESHOLD"],
                lockout_minutes=current_app.config["LOCKOUT_MINUTES"],
            )
        except SignInFailed as exc:
            form.email.errors.append(exc.message)
        else:
            start_session(user)
            if user.must_change_password:
                return redirect(url_for("auth.change_password"))
            return redirect(_safe_next(request.args.get("next")) or url_for("staff.home"))
    return render_template(
        "auth/sign_in.html", form=form, expired=expired, idle_minutes=current_app.config["SESSION_IDLE_MINUTES"]
    )


@bp.post("/sign-out")
@signed_in
def sign_out():
    audit.record(
        "auth.sign_out",
        actor=g.user,
        object_type="user",
        object_id=g.user.id,
        summary="Signed out",
        ip_address=client_ip(),
    )
    session.clear()
    return redirect(url_for("auth.signed_out"))


@bp.get("/signed-out")
@public
def signed_out():
    return render_template("auth/signed_out.html")


@bp.route("/change-password", methods=["GET", "POST"], endpoint="change_password")
@signed_in
def change_password_page():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            user = change_password(g.user, form.current_password.data, form.new_password.data, ip_address=client_ip())
        except DomainError as exc:
            getattr(form, exc.field or "new_password").errors.append(exc.message)
        else:
            start_session(user)  # the session version changed: other sessions of this user end
            flash("Your password has been changed", "success")
            return redirect(url_for("staff.home"))
    return render_template("auth/change_password.html", form=form)
