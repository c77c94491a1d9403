"""Settings pages for administrators: council settings and every kind of configuration.

Pattern (GOV.UK): list → add → check your answers → confirm (banner); view → change;
disable/enable with a confirmation page. Nothing is deleted: configuration that ledger
entries refer to is disabled instead. Viewing needs VIEW_CONFIG, changing MANAGE_CONFIG.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from app.access import requires
from app.domain.configuration import change_config, create_config
from app.domain.council import CouncilSettings, update_settings
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.users import Permission
from app.domain.vat import VatCode, add_rate, format_rate, parse_percentage
from app.forms.settings import ConfirmForm, CouncilSettingsForm, VatRateForm
from app.routes import client_ip
from app.routes.add_journey import answers_form, forget_answers, keep_answers, show_domain_error, waiting_form
from app.routes.admin_sections import LINKS, SECTIONS, Section

bp = Blueprint("admin", __name__, url_prefix="/admin/settings")

VIEW = Permission.VIEW_CONFIG
MANAGE = Permission.MANAGE_CONFIG


def _section(slug: str) -> Section:
    section = SECTIONS.get(slug)
    if section is None:
        abort(404)
    return section


def _answers_key(slug: str) -> str:
    return f"add_{slug}"


def _item(section: Section, item_id: int):
    item = section.model.get_or_none(section.model.id == item_id)
    if item is None:
        abort(404)
    return item


def _apply_domain_error(form, exc: DomainError) -> None:
    show_domain_error(form, exc, fallback="name" if hasattr(form, "name") else "submit")


def _extras(section: Section, item=None, form=None) -> dict:
    if section.slug == "fund-groups":
        if form is not None:
            ids = [int(x) for x in form.funds.data or []]
            names = [f.name for f in Fund.select().where(Fund.id.in_(ids)).order_by(Fund.name)] if ids else []
        else:
            names = [f.name for f in item.funds()]
        return {"fund_names": names}
    return {}


def _summary_rows(section: Section, values: dict) -> list[tuple[str, str]]:
    return [(label, fn(values)) for label, fn in section.summary]


# --- index and council settings -------------------------------------------------------------


@bp.get("")
@requires(VIEW)
def settings_index():
    return render_template("admin/index.html", sections=SECTIONS.values(), links=LINKS)


@bp.get("/council")
@requires(VIEW)
def council():
    return render_template("admin/council.html", settings=CouncilSettings.current())


@bp.route("/council/change", methods=["GET", "POST"])
@requires(MANAGE)
def change_council():
    settings = CouncilSettings.current()
    form = CouncilSettingsForm(obj=settings)
    if form.validate_on_submit():
        logo = request.files.get("logo")
        logo_bytes = logo.read() if logo and logo.filename else None
        values = {
            k: form.data[k]
            for k in (
                "council_name",
                "service_name",
                "brand_colour",
                "phase",
                "basket_max_items",
                "contact_email",
                "contact_phone",
                "website_url",
                "accessibility_contact",
                "postal_address",
                "vat_registration_number",
                "refund_approval_pence",
            )
        }
        try:
            update_settings(g.user, values, logo=logo_bytes, ip_address=client_ip())
        except DomainError as exc:
            _apply_domain_error(form, exc)
        else:
            flash("Council settings saved", "success")
            return redirect(url_for("admin.council"))
    return render_template("admin/council_change.html", form=form)


# --- generic configuration pages ------------------------------------------------------------


@bp.get("/<slug>")
@requires(VIEW)
def list_items(slug):
    section = _section(slug)
    items = section.model.select().order_by(section.model.enabled.desc(), section.model.name)
    return render_template("admin/list.html", section=section, items=list(items))


@bp.route("/<slug>/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_item(slug):
    section = _section(slug)
    form = answers_form(section.form_class(adding=True), _answers_key(slug))
    if section.prepare_form:
        section.prepare_form(form)
    if form.validate_on_submit():
        if section.model.by_code(form.code.data) is not None:
            form.code.errors.append(f"A {section.singular} with code {form.code.data} already exists")
        else:
            keep_answers(_answers_key(slug))
            return redirect(url_for("admin.check_item", slug=slug))
    return render_template("admin/form.html", section=section, form=form, adding=True)


@bp.route("/<slug>/add/check", methods=["GET", "POST"])
@requires(MANAGE)
def check_item(slug):
    section = _section(slug)
    form = waiting_form(section.form_class(adding=True), _answers_key(slug), section.prepare_form)
    if form is None:
        return redirect(url_for("admin.add_item", slug=slug))
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            item = create_config(section.model, g.user, section.values(form), ip_address=client_ip())
            if section.after_save:
                section.after_save(item, form, g.user, client_ip())
        except DomainError as exc:
            flash(exc.message, "info")
            return redirect(url_for("admin.add_item", slug=slug))
        forget_answers(_answers_key(slug))
        flash(f"{section.singular[0].upper() + section.singular[1:]} {item.code} {item.name} added", "success")
        return redirect(url_for("admin.view_item", slug=slug, item_id=item.id))
    values = section.values(form) | _extras(section, form=form)
    rows = [("Code", values["code"]), ("Name", values["name"])] + _summary_rows(section, values)
    if section.slug == "vat-codes":
        rows += [
            ("Rate", format_rate(parse_percentage(form.rate.data))),
            ("In force from", form.effective_from.data.strftime("%-d %B %Y")),
        ]
    return render_template("admin/check.html", section=section, rows=rows, confirm=confirm)


@bp.get("/<slug>/<int:item_id>")
@requires(VIEW)
def view_item(slug, item_id):
    section = _section(slug)
    item = _item(section, item_id)
    values = dict(item.__data__) | _extras(section, item=item)
    rows = [("Code", item.code), ("Name", item.name), ("Status", "Enabled" if item.enabled else "Disabled")]
    rows += _summary_rows(section, values)
    rates = list(item.rates()) if isinstance(item, VatCode) else []
    return render_template(
        "admin/view.html", section=section, item=item, rows=rows, rates=rates, format_rate=format_rate
    )


@bp.route("/<slug>/<int:item_id>/change", methods=["GET", "POST"])
@requires(MANAGE)
def change_item(slug, item_id):
    section = _section(slug)
    item = _item(section, item_id)
    form = section.form_class(adding=False)(obj=item)
    if section.prepare_form:
        section.prepare_form(form)
    if request.method == "GET":
        if hasattr(form, "vat_code"):
            form.vat_code.data = str(item.vat_code_id or "")
        if hasattr(form, "funds"):
            form.funds.data = [str(f.id) for f in item.funds()]
    # The code never changes and is not on the change form: validate the stored one (InputRequired reads raw_data).
    form.code.data = item.code
    form.code.raw_data = [item.code]
    if form.validate_on_submit():
        try:
            change_config(item, g.user, section.values(form), ip_address=client_ip())
            if section.after_save:
                section.after_save(item, form, g.user, client_ip())
        except DomainError as exc:
            _apply_domain_error(form, exc)
        else:
            flash(f"{section.singular[0].upper() + section.singular[1:]} {item.code} saved", "success")
            return redirect(url_for("admin.view_item", slug=slug, item_id=item.id))
    return render_template("admin/form.html", section=section, form=form, adding=False, item=item)


@bp.route("/<slug>/<int:item_id>/<any(disable, enable):action>", methods=["GET", "POST"])
@requires(MANAGE)
def toggle_item(slug, item_id, action):
    section = _section(slug)
    item = _item(section, item_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        change_config(item, g.user, {"enabled": action == "enable"}, ip_address=client_ip())
        flash(f"{item.code} {item.name} {action}d", "success")
        return redirect(url_for("admin.view_item", slug=slug, item_id=item.id))
    return render_template("admin/toggle.html", section=section, item=item, action=action, form=form)


@bp.route("/vat-codes/<int:item_id>/rates/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_vat_rate(item_id):
    vat_code = _item(SECTIONS["vat-codes"], item_id)
    form = VatRateForm()
    if form.validate_on_submit():
        try:
            add_rate(
                vat_code, g.user, parse_percentage(form.rate.data), form.effective_from.data, ip_address=client_ip()
            )
        except DomainError as exc:
            _apply_domain_error(form, exc)
        else:
            flash(f"Rate added to VAT code {vat_code.code}", "success")
            return redirect(url_for("admin.view_item", slug="vat-codes", item_id=vat_code.id))
    return render_template("admin/vat_rate_add.html", form=form, vat_code=vat_code)
