"""User administration: list, add (check, confirm with a one-time temporary password),
change roles and fund groups, disable/enable, reset password."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from app.access import requires
from app.domain.errors import DomainError
from app.domain.funds import FundGroup
from app.domain.users import ROLES, Permission, User, change_user, create_user, reset_password, set_user_enabled
from app.email import send_email
from app.forms.settings import ConfirmForm
from app.forms.users import ChangeUserForm, UserForm
from app.routes import client_ip
from app.routes.add_journey import answers_form, forget_answers, keep_answers, waiting_form

bp = Blueprint("users", __name__, url_prefix="/admin/users")
MANAGE = Permission.MANAGE_USERS
ANSWERS = "add_user"


def _prepare(form) -> None:
    form.fund_groups.choices = [(str(gr.id), gr.name) for gr in FundGroup.select().order_by(FundGroup.name)]
    for choice_field in (form.roles,):
        choice_field.description = "Select all that apply. " + " ".join(
            f"{r.name}: {r.description.lower()}." for r in ROLES.values()
        )


def _user(user_id: int) -> User:
    user = User.get_or_none(User.id == user_id)
    if user is None:
        abort(404)
    return user


@bp.get("")
@requires(MANAGE)
def list_users():
    users = list(User.select().order_by(User.enabled.desc(), User.name))
    return render_template("users/list.html", users=users)


@bp.route("/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_user():
    form = answers_form(UserForm, ANSWERS)
    _prepare(form)
    if form.validate_on_submit():
        if User.get_or_none(User.email == form.email.data.lower()):
            form.email.errors.append("A user with this e-mail address already exists")
        else:
            keep_answers(ANSWERS)
            return redirect(url_for("users.check_user"))
    return render_template("users/form.html", form=form, adding=True)


@bp.route("/add/check", methods=["GET", "POST"])
@requires(MANAGE)
def check_user():
    form = waiting_form(UserForm, ANSWERS, _prepare)
    if form is None:
        return redirect(url_for("users.add_user"))
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            user, password = create_user(
                g.user,
                email=form.email.data,
                name=form.name.data,
                roles=form.roles.data,
                fund_group_ids=[int(x) for x in form.fund_groups.data or []],
                ip_address=client_ip(),
            )
        except DomainError as exc:
            flash(exc.message, "info")
            return redirect(url_for("users.add_user"))
        forget_answers(ANSWERS)
        send_email(
            to=user.email,
            purpose="account_created",
            subject="Your income management account",
            body=(
                f"Dear {user.name},\n\nAn account has been created for you in the income management system. "
                "Your administrator will give you a temporary password. You will be asked to choose your own "
                f"password when you first sign in at {url_for('auth.sign_in', _external=True)}.\n"
            ),
        )
        return render_template("users/created.html", user=user, password=password)
    groups = {str(gr.id): gr.name for gr in FundGroup.select()}
    rows = [
        ("Full name", form.name.data),
        ("E-mail address", form.email.data),
        ("Roles", ", ".join(ROLES[r].name for r in form.roles.data)),
        ("Fund groups", ", ".join(groups[x] for x in form.fund_groups.data or []) or "None"),
    ]
    return render_template("users/check.html", rows=rows, confirm=confirm)


@bp.get("/<int:user_id>")
@requires(MANAGE)
def view_user(user_id):
    user = _user(user_id)
    return render_template("users/view.html", user=user)


@bp.route("/<int:user_id>/change", methods=["GET", "POST"])
@requires(MANAGE)
def change_user_page(user_id):
    user = _user(user_id)
    form = ChangeUserForm(obj=user)
    _prepare(form)
    if request.method == "GET":
        form.roles.data = user.role_codes()
        form.fund_groups.data = [str(gr.id) for gr in user.fund_groups()]
    if form.validate_on_submit():
        try:
            change_user(
                user,
                g.user,
                name=form.name.data,
                roles=form.roles.data,
                fund_group_ids=[int(x) for x in form.fund_groups.data or []],
                ip_address=client_ip(),
            )
        except DomainError as exc:
            getattr(form, exc.field or "name").errors.append(exc.message)
        else:
            flash(f"{user.name}'s details saved", "success")
            return redirect(url_for("users.view_user", user_id=user.id))
    return render_template("users/form.html", form=form, adding=False, user=user)


@bp.route("/<int:user_id>/<any(disable, enable, 'reset-password'):action>", methods=["GET", "POST"])
@requires(MANAGE)
def user_action(user_id, action):
    user = _user(user_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            if action == "reset-password":
                password = reset_password(user, g.user, ip_address=client_ip())
                return render_template("users/created.html", user=user, password=password, reset=True)
            set_user_enabled(user, g.user, action == "enable", ip_address=client_ip())
        except DomainError as exc:
            flash(exc.message, "info")
        else:
            flash(f"{user.name} {action}d", "success")
        return redirect(url_for("users.view_user", user_id=user.id))
    return render_template("users/confirm.html", user=user, action=action, form=form)
