"""Reference rules for administrators: check-digit configurations, each fund's formats and
settings, and the "try a reference" tester (spec/reference-validation.md §7).

Everything is saved through app.domain.references, which checks it, audits it and makes every
process recompile the fund's rule. Viewing and trying need VIEW_CONFIG, changing MANAGE_CONFIG.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for

from app.access import requires
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.references import (
    ALGORITHMS,
    CHARACTER_TYPES,
    OVERPAYMENT,
    CheckDigitConfig,
    ReferenceFormat,
    change_check_digit_config,
    change_format,
    create_check_digit_config,
    format_prefix_substitutions,
    format_result_substitutions,
    formats_of,
    move_format,
    remove_format,
    rule_settings,
    save_rule_settings,
    try_references,
    validate_config,
    validate_reference,
)
from app.domain.references import add_format as add_reference_format
from app.domain.users import Permission
from app.forms.references import (
    CheckDigitConfigForm,
    ReferenceFormatForm,
    RuleSettingsForm,
    TryManyForm,
    TryReferenceForm,
)
from app.forms.settings import ConfirmForm
from app.routes import client_ip
from app.routes.add_journey import answers_form, forget_answers, keep_answers, show_domain_error, waiting_form

bp = Blueprint("references_admin", __name__, url_prefix="/admin/settings/references")

VIEW = Permission.VIEW_CONFIG
MANAGE = Permission.MANAGE_CONFIG
PENDING = "pending_check_digit"

CHECK_NAMES = {
    "fund": "Fund",
    "amount": "Amount",
    "reference": "Reference entered",
    "format": "Format",
    "length": "Length",
    "character_type": "Characters",
    "pattern": "Regular expression",
    "mask": "Mask",
    "check_digit": "Check digit",
    "account_exists": "Account exists",
    "on_stop": "Account on stop",
    "overpayment": "Overpayment",
}


def _config(config_id: int) -> CheckDigitConfig:
    config = CheckDigitConfig.get_or_none(CheckDigitConfig.id == config_id)
    if config is None:
        abort(404)
    return config


def _fund(fund_id: int) -> Fund:
    fund = Fund.get_or_none(Fund.id == fund_id)
    if fund is None:
        abort(404)
    return fund


def _format(fund: Fund, format_id: int) -> ReferenceFormat:
    fmt = ReferenceFormat.get_or_none((ReferenceFormat.id == format_id) & (ReferenceFormat.fund == fund.id))
    if fmt is None:
        abort(404)
    return fmt


def config_rows(values) -> list[tuple[str, str]]:
    """Summary rows for a configuration (a model or the dict of form values)."""

    def get(name, default=""):
        return values.get(name, default) if isinstance(values, dict) else getattr(values, name, default)

    algorithm = get("algorithm")
    rows = [("Algorithm", ALGORITHMS.get(algorithm, algorithm))]
    if algorithm != "luhn":
        rows += [("Modulus", str(get("modulus"))), ("Weights", str(get("weights")) or "None")]
        if algorithm == "weighted_sum":
            rows.append(("Subtract from modulus", "Yes" if get("subtract_from_modulus") else "No"))
            rows.append(
                ("Prefix substitutions", format_prefix_substitutions(get("prefix_substitutions") or "") or "None")
            )
        rows.append(("Result substitutions", format_result_substitutions(get("result_substitutions") or "") or "None"))
    rows.append(("Notes for administrators", get("description") or "None"))
    return rows


# --- index ----------------------------------------------------------------------------------


@bp.get("")
@requires(VIEW)
def index():
    funds = list(Fund.select().order_by(Fund.name))
    counts = {f.id: 0 for f in funds}
    for fmt in ReferenceFormat.select(ReferenceFormat.fund):
        counts[fmt.fund_id] = counts.get(fmt.fund_id, 0) + 1
    configs = CheckDigitConfig.select().count()
    return render_template("references/index.html", funds=funds, counts=counts, configs=configs)


# --- check-digit configurations -------------------------------------------------------------


@bp.get("/check-digits")
@requires(VIEW)
def configs():
    items = list(CheckDigitConfig.select().order_by(CheckDigitConfig.enabled.desc(), CheckDigitConfig.name))
    return render_template("references/configs.html", items=items, algorithms=ALGORITHMS)


@bp.route("/check-digits/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_config():
    form = answers_form(CheckDigitConfigForm, PENDING)
    if form.validate_on_submit():
        try:
            if CheckDigitConfig.by_code(form.code.data) is not None:
                raise DomainError(f"A check-digit configuration with code {form.code.data} already exists", "code")
            validate_config(form.values())
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            keep_answers(PENDING)
            return redirect(url_for("references_admin.check_config"))
    return render_template("references/config_form.html", form=form, adding=True)


@bp.route("/check-digits/add/check", methods=["GET", "POST"])
@requires(MANAGE)
def check_config():
    if not session.get(PENDING):
        return redirect(url_for("references_admin.add_config"))
    form = waiting_form(CheckDigitConfigForm, PENDING)
    if form is None:
        return redirect(url_for("references_admin.add_config", change=1))
    values = form.values()
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            config = create_check_digit_config(g.user, values, ip_address=client_ip())
        except DomainError as exc:
            flash(exc.message, "info")
            return redirect(url_for("references_admin.add_config", change=1))
        forget_answers(PENDING)
        flash(f"Check-digit configuration {config.code} {config.name} added", "success")
        return redirect(url_for("references_admin.view_config", config_id=config.id))
    try:
        spec = validate_config(values)
    except DomainError:
        return redirect(url_for("references_admin.add_config", change=1))
    shown = values | spec.as_storage()
    rows = [("Code", values["code"]), ("Name", values["name"])] + config_rows(shown)
    return render_template("references/config_check.html", rows=rows, confirm=confirm)


@bp.get("/check-digits/<int:config_id>")
@requires(VIEW)
def view_config(config_id):
    config = _config(config_id)
    rows = [("Code", config.code), ("Name", config.name), ("Status", "Enabled" if config.enabled else "Disabled")]
    rows += config_rows(config)
    users = list(
        ReferenceFormat.select(ReferenceFormat, Fund)
        .join(Fund)
        .where(ReferenceFormat.check_digit == config.id)
        .order_by(Fund.name, ReferenceFormat.position)
    )
    return render_template("references/config_view.html", config=config, rows=rows, users=users)


@bp.route("/check-digits/<int:config_id>/change", methods=["GET", "POST"])
@requires(MANAGE)
def change_config(config_id):
    config = _config(config_id)
    form = CheckDigitConfigForm(obj=config)
    if request.method == "GET":
        form.prefix_substitutions.data = format_prefix_substitutions(config.prefix_substitutions or "")
        form.result_substitutions.data = format_result_substitutions(config.result_substitutions or "")
    # The code never changes and is not on the change form.
    form.code.data = config.code
    form.code.raw_data = [config.code]
    if form.validate_on_submit():
        values = form.values()
        values.pop("code")
        try:
            change_check_digit_config(config, g.user, values, ip_address=client_ip())
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(f"Check-digit configuration {config.code} saved", "success")
            return redirect(url_for("references_admin.view_config", config_id=config.id))
    return render_template("references/config_form.html", form=form, adding=False, config=config)


@bp.route("/check-digits/<int:config_id>/<any(disable, enable):action>", methods=["GET", "POST"])
@requires(MANAGE)
def toggle_config(config_id, action):
    config = _config(config_id)
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        try:
            change_check_digit_config(config, g.user, {"enabled": action == "enable"}, ip_address=client_ip())
        except DomainError as exc:
            error = exc.message
        else:
            flash(f"{config.code} {config.name} {action}d", "success")
            return redirect(url_for("references_admin.view_config", config_id=config.id))
    return render_template("references/config_toggle.html", config=config, action=action, form=form, error=error)


# --- a fund's reference rule ----------------------------------------------------------------


def format_rows(fmt: ReferenceFormat) -> list[tuple[str, str]]:
    def day(value):
        return value.strftime("%-d %B %Y") if value else None

    start, end = day(fmt.effective_from), day(fmt.effective_to)
    if start and end:
        dates = f"From {start} to {end}"
    elif start:
        dates = f"From {start}"
    elif end:
        dates = f"Until {end}"
    else:
        dates = "Always"
    channels = {(True, True): "The public and staff", (True, False): "The public only"}.get(
        (fmt.public, fmt.staff), "Staff only"
    )
    if fmt.min_length and fmt.max_length:
        length = (
            f"{fmt.min_length} characters"
            if fmt.min_length == fmt.max_length
            else f"{fmt.min_length} to {fmt.max_length} characters"
        )
    elif fmt.min_length:
        length = f"At least {fmt.min_length} characters"
    elif fmt.max_length:
        length = f"Up to {fmt.max_length} characters"
    else:
        length = "Any"
    config = fmt.check_digit
    return [
        ("In effect", dates),
        ("Who can use it", channels),
        ("Length", length),
        ("Characters", CHARACTER_TYPES.get(fmt.character_type, fmt.character_type)),
        ("Regular expression", fmt.pattern or "None"),
        ("Mask", fmt.mask or "None"),
        ("Check digit", f"{config.code} {config.name}" if config else "None"),
        ("Example", fmt.example),
        ("Warning for staff", fmt.staff_warning or "None"),
    ]


@bp.get("/funds/<int:fund_id>")
@requires(VIEW)
def fund_rule(fund_id):
    fund = _fund(fund_id)
    formats = list(formats_of(fund))
    settings = rule_settings(fund)
    return render_template(
        "references/fund.html",
        fund=fund,
        formats=[(fmt, format_rows(fmt)) for fmt in formats],
        settings=settings,
        overpayment=OVERPAYMENT,
        move_form=ConfirmForm(),
    )


def _prepare_format_form(form: ReferenceFormatForm, current_id: int | None = None) -> None:
    configs = CheckDigitConfig.select().where(
        (CheckDigitConfig.enabled == True) | (CheckDigitConfig.id == (current_id or 0))  # noqa: E712
    )
    form.check_digit.choices = [("", "No check digit")] + [
        (str(c.id), f"{c.code} – {c.name}") for c in configs.order_by(CheckDigitConfig.name)
    ]


FORMAT_FIELDS = {"public": "channels", "staff": "channels"}


@bp.route("/funds/<int:fund_id>/formats/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_format(fund_id):
    fund = _fund(fund_id)
    form = ReferenceFormatForm()
    _prepare_format_form(form)
    if form.validate_on_submit():
        try:
            fmt = add_reference_format(fund, g.user, form.values(), ip_address=client_ip())
        except DomainError as exc:
            show_domain_error(form, exc, aliases=FORMAT_FIELDS, fallback="label")
        else:
            flash(f"Format “{fmt.label}” added to {fund.name}", "success")
            return redirect(url_for("references_admin.fund_rule", fund_id=fund.id))
    return render_template("references/format_form.html", form=form, fund=fund, fmt=None)


@bp.route("/funds/<int:fund_id>/formats/<int:format_id>/change", methods=["GET", "POST"])
@requires(MANAGE)
def change_reference_format(fund_id, format_id):
    fund = _fund(fund_id)
    fmt = _format(fund, format_id)
    form = ReferenceFormatForm(obj=fmt)
    _prepare_format_form(form, fmt.check_digit_id)
    if request.method == "GET":
        form.channels.data = [name for name in ("public", "staff") if getattr(fmt, name)]
        form.check_digit.data = str(fmt.check_digit_id or "")
        form.min_length.data = str(fmt.min_length or "")
        form.max_length.data = str(fmt.max_length or "")
    if form.validate_on_submit():
        try:
            change_format(fmt, g.user, form.values(), ip_address=client_ip())
        except DomainError as exc:
            show_domain_error(form, exc, aliases=FORMAT_FIELDS, fallback="label")
        else:
            flash(f"Format “{fmt.label}” saved", "success")
            return redirect(url_for("references_admin.fund_rule", fund_id=fund.id))
    return render_template("references/format_form.html", form=form, fund=fund, fmt=fmt)


@bp.route("/funds/<int:fund_id>/formats/<int:format_id>/remove", methods=["GET", "POST"])
@requires(MANAGE)
def remove_reference_format(fund_id, format_id):
    fund = _fund(fund_id)
    fmt = _format(fund, format_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        remove_format(fmt, g.user, ip_address=client_ip())
        flash(f"Format “{fmt.label}” removed from {fund.name}", "success")
        return redirect(url_for("references_admin.fund_rule", fund_id=fund.id))
    return render_template("references/format_remove.html", form=form, fund=fund, fmt=fmt)


@bp.post("/funds/<int:fund_id>/formats/<int:format_id>/move/<any(up, down):direction>")
@requires(MANAGE)
def move_reference_format(fund_id, format_id, direction):
    fund = _fund(fund_id)
    fmt = _format(fund, format_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        move_format(fmt, g.user, direction, ip_address=client_ip())
        flash(f"Format “{fmt.label}” moved {direction}", "success")
    return redirect(url_for("references_admin.fund_rule", fund_id=fund.id))


@bp.route("/funds/<int:fund_id>/settings", methods=["GET", "POST"])
@requires(MANAGE)
def change_settings(fund_id):
    fund = _fund(fund_id)
    settings = rule_settings(fund)
    form = RuleSettingsForm(obj=settings)
    if form.validate_on_submit():
        try:
            save_rule_settings(
                fund,
                g.user,
                remove_characters=form.remove_characters.data or "",
                public_stop_message=form.public_stop_message.data or "",
                overpayment=form.overpayment.data,
                ip_address=client_ip(),
            )
        except DomainError as exc:
            show_domain_error(form, exc)
        else:
            flash(f"Reference settings for {fund.name} saved", "success")
            return redirect(url_for("references_admin.fund_rule", fund_id=fund.id))
    return render_template("references/settings_form.html", form=form, fund=fund)


# --- trying references ----------------------------------------------------------------------


@bp.get("/funds/<int:fund_id>/try")
@requires(VIEW)
def try_reference(fund_id):
    fund = _fund(fund_id)
    form = TryReferenceForm(request.args)
    result = None
    if request.args and form.validate():
        result = validate_reference(fund, form.reference.data, form.amount.data, channel=form.channel.data)
    return render_template(
        "references/try.html",
        fund=fund,
        form=form,
        result=result,
        check_names=CHECK_NAMES,
        submitted=bool(request.args),
    )


@bp.route("/funds/<int:fund_id>/try-many", methods=["GET", "POST"])
@requires(VIEW)
def try_many(fund_id):
    fund = _fund(fund_id)
    form = TryManyForm()
    results = None
    if form.validate_on_submit():
        lines = form.reference_lines()
        results = list(zip(lines, try_references(fund, lines, channel=form.channel.data), strict=True))
    passed = sum(1 for _, r in results if r.valid) if results is not None else 0
    return render_template(
        "references/try_many.html",
        fund=fund,
        form=form,
        results=results,
        passed=passed,
        check_names=CHECK_NAMES,
    )
