"""Import templates and import rules, for administrators (settings).

Templates: the four built-ins (layout fixed: only default fund and method change) and CSV
templates administrators describe; "try this template" reads pasted lines. Rules: an ordered
list (move up / move down are POST buttons), add, change, turn off and on; "Try this rule"
reads pasted lines with a template and shows what the rules would do, before saving.
Everything is saved through app.domain.imports, which checks and audits it. Viewing needs
VIEW_CONFIG, changing MANAGE_CONFIG.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from app.access import requires
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.imports.formats import (
    AMOUNT_UNITS,
    CSV_FIELDS,
    DATE_FORMATS,
    DELIMITERS,
    ENCODINGS,
    KINDS,
    ImportRow,
    RowProblem,
    read_sample,
)
from app.domain.imports.rules import (
    ACTIONS,
    DECISIONS,
    FORMAT_FIELDS,
    MAX_CONDITIONS,
    OPERATORS,
    ROW_FIELDS,
    ImportRule,
    change_rule,
    clean_rule,
    compile_rule,
    create_rule,
    move_rule,
    ordered_rules,
    rules_for,
    set_rule_active,
)
from app.domain.imports.templates import (
    ImportTemplate,
    change_defaults,
    change_template,
    create_template,
    describe_column,
    form_values,
    set_template_active,
)
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.users import Permission
from app.forms.import_admin import CsvTemplateForm, RuleForm, TemplateDefaultsForm, TrySampleForm
from app.forms.settings import ConfirmForm
from app.routes import client_ip
from app.routes.add_journey import show_domain_error

bp = Blueprint("import_admin", __name__, url_prefix="/admin/settings/imports")

VIEW = Permission.VIEW_CONFIG
MANAGE = Permission.MANAGE_CONFIG
SAMPLE_LIMIT = 50


def _template(template_id: int) -> ImportTemplate:
    template = ImportTemplate.get_or_none(ImportTemplate.id == template_id)
    if template is None:
        abort(404)
    return template


def _rule(rule_id: int) -> ImportRule:
    rule = ImportRule.get_or_none(ImportRule.id == rule_id)
    if rule is None:
        abort(404)
    return rule


def _fund_choices(current_id=None) -> list[tuple[str, str]]:
    funds = Fund.select().where((Fund.enabled == True) | (Fund.id == (current_id or 0))).order_by(Fund.name)  # noqa: E712
    return [("", "None")] + [(str(f.id), f"{f.name} ({f.code})") for f in funds]


def _method_choices(current_id=None) -> list[tuple[str, str]]:
    methods = MethodOfPayment.select().where(
        (MethodOfPayment.enabled == True) | (MethodOfPayment.id == (current_id or 0))  # noqa: E712
    )
    return [("", "None")] + [(str(m.id), f"{m.name} ({m.code})") for m in methods.order_by(MethodOfPayment.name)]


def _name(model, item_id) -> str:
    if not item_id:
        return "None"
    item = model.get_or_none(model.id == item_id)
    return f"{item.name} ({item.code})" if item else "None"


def template_rows(template: ImportTemplate) -> list[tuple[str, str]]:
    options = template.settings
    rows = [
        ("Type of file", KINDS.get(template.kind, template.kind)),
        ("Status", "On" if template.is_active else "Off"),
        ("Description", template.description or "None"),
    ]
    if template.kind == "csv":
        columns = options.get("columns") or {}
        rows += [
            ("Values separated by", DELIMITERS.get(options.get("delimiter", "comma"), (",", "Comma"))[1]),
            ("Header rows", str(options.get("header_rows", 1))),
            ("Encoding", ENCODINGS.get(options.get("encoding", ""), options.get("encoding", ""))),
            ("Dates", DATE_FORMATS.get(options.get("date_format", ""), ("", options.get("date_format", "")))[1]),
            ("Amounts", AMOUNT_UNITS.get(options.get("amount_unit", "pounds"), "")),
            ("Negative amounts allowed", "Yes" if options.get("allow_negative") or "sign" in columns else "No"),
        ]
        for name, label in CSV_FIELDS.items():
            if name in columns:
                rows.append((label.split(" (")[0], describe_column(columns[name])))
        for name, column in columns.items():
            if name not in CSV_FIELDS:
                rows.append((f"Field “{name}”", describe_column(column)))
        if "sign" in columns:
            rows.append(("Negative signs", options.get("negative_values", "-")))
    elif options.get("encoding"):
        rows.append(("Encoding", ENCODINGS.get(options["encoding"], "Windows-1252")))
    rows += [
        ("Default fund", _name(Fund, template.default_fund_id)),
        ("Default method of payment", _name(MethodOfPayment, template.default_method_id)),
    ]
    return rows


# --- templates ------------------------------------------------------------------------------


@bp.get("/templates")
@requires(VIEW)
def templates():
    items = list(
        ImportTemplate.select().order_by(
            ImportTemplate.is_active.desc(), ImportTemplate.is_builtin.desc(), ImportTemplate.name
        )
    )
    return render_template("import_admin/templates.html", items=items, kinds=KINDS)


def _prepare_template_form(form, template: ImportTemplate | None = None) -> None:
    form.default_fund.choices = _fund_choices(template.default_fund_id if template else None)
    form.default_method.choices = _method_choices(template.default_method_id if template else None)


@bp.route("/templates/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_template():
    form = CsvTemplateForm()
    _prepare_template_form(form)
    if form.validate_on_submit():
        try:
            template = create_template(g.user, form.values(), ip_address=client_ip())
        except DomainError as exc:
            show_domain_error(form, exc, fallback="name")
        else:
            flash(f"Import template {template.name} added", "success")
            return redirect(url_for("import_admin.view_template", template_id=template.id))
    return render_template("import_admin/template_form.html", form=form, template=None)


@bp.get("/templates/<int:template_id>")
@requires(VIEW)
def view_template(template_id):
    template = _template(template_id)
    rules = [r for r in ordered_rules() if r.template_id is None or r.template_id == template.id]
    return render_template(
        "import_admin/template_view.html", template=template, rows=template_rows(template), rules=rules
    )


@bp.route("/templates/<int:template_id>/change", methods=["GET", "POST"])
@requires(MANAGE)
def change_template_view(template_id):
    template = _template(template_id)
    if template.is_builtin:
        form = TemplateDefaultsForm()
        _prepare_template_form(form, template)
        if request.method == "GET":
            form.default_fund.data = str(template.default_fund_id or "")
            form.default_method.data = str(template.default_method_id or "")
        if form.validate_on_submit():
            try:
                change_defaults(
                    template, g.user, form.default_fund.data, form.default_method.data, ip_address=client_ip()
                )
            except DomainError as exc:
                show_domain_error(form, exc, fallback="default_fund")
            else:
                flash(f"Defaults for {template.name} saved", "success")
                return redirect(url_for("import_admin.view_template", template_id=template.id))
        return render_template("import_admin/template_defaults.html", form=form, template=template)

    if request.method == "GET":
        form = CsvTemplateForm(formdata=MultiDict(_as_form_data(form_values(template))))
    else:
        form = CsvTemplateForm()
    _prepare_template_form(form, template)
    if form.validate_on_submit():
        try:
            change_template(template, g.user, form.values(), ip_address=client_ip())
        except DomainError as exc:
            show_domain_error(form, exc, fallback="name")
        else:
            flash(f"Import template {template.name} saved", "success")
            return redirect(url_for("import_admin.view_template", template_id=template.id))
    return render_template("import_admin/template_form.html", form=form, template=template)


def _as_form_data(values: dict) -> dict:
    data = {}
    for key, value in values.items():
        if isinstance(value, bool):
            if value:
                data[key] = "y"
        else:
            data[key] = "" if value is None else str(value)
    return data


@bp.route("/templates/<int:template_id>/<any(disable, enable):action>", methods=["GET", "POST"])
@requires(MANAGE)
def toggle_template(template_id, action):
    template = _template(template_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        set_template_active(template, g.user, action == "enable", ip_address=client_ip())
        flash(f"Import template {template.name} turned {'on' if action == 'enable' else 'off'}", "success")
        return redirect(url_for("import_admin.view_template", template_id=template.id))
    return render_template("import_admin/template_toggle.html", template=template, action=action, form=form)


def sample_results(template: ImportTemplate, text: str, ruleset=None, candidate=None) -> list[dict]:
    """Each line read from a pasted sample: its fields, and what the rules would do with it."""
    from app.domain.imports.batches import Planner

    results = []
    # What an import would really do with each line (the rules, then routing to a fund and the
    # fund's reference rule, or suspense), so a try-out never says "Post" for a line an import
    # would put into suspense.
    planner = None
    if ruleset is not None:
        planner = Planner(template)
        planner.rules = ruleset
    for item in read_sample(template, text, limit=SAMPLE_LIMIT):
        if isinstance(item, RowProblem):
            results.append({"line": item.line_number, "problem": item.message})
            continue
        result = {"line": item.line_number, "row": item, "fields": _shown_fields(item)}
        if candidate is not None:
            result["matched"] = bool(candidate.test(item))
        if ruleset is not None:
            outcome = ruleset.apply(item)
            result["outcome"] = outcome
            result["changes"] = _changes(item, outcome.row)
            planned = planner.plan(item)
            result["planned"] = planned
            if planned.kind == "post":
                result["destination"] = f"{planned.request.fund.name}, {planned.request.account_reference}"
        results.append(result)
    return results


def _shown_fields(row: ImportRow) -> list[tuple[str, str]]:
    shown = [
        ("reference", row.account_reference),
        ("amount", format_pence(row.amount_pence)),
        ("date", row.business_date.isoformat()),
        ("fund", row.fund_code or "(none)"),
        ("method", row.method_code or "(none)"),
    ]
    if row.payer_name:
        shown.append(("payer_name", row.payer_name))
    if row.narrative:
        shown.append(("narrative", row.narrative))
    if row.source_reference:
        shown.append(("line_id", row.source_reference))
    for name, value in row.fields.items():
        if name not in {"reference", "amount", "date", "fund", "method", "payer_name", "narrative"} and value:
            shown.append((name, value))
    return shown


def _changes(before: ImportRow, after: ImportRow) -> list[str]:
    changes = []
    if before.account_reference != after.account_reference:
        changes.append(f"Reference {before.account_reference} becomes {after.account_reference}")
    if before.fund_code != after.fund_code:
        changes.append(f"Fund {before.fund_code or '(none)'} becomes {after.fund_code}")
    if before.method_code != after.method_code:
        changes.append(f"Method {before.method_code or '(none)'} becomes {after.method_code}")
    return changes


@bp.route("/templates/<int:template_id>/try", methods=["GET", "POST"])
@requires(VIEW)
def try_template(template_id):
    template = _template(template_id)
    if template.kind == "account_holders":
        abort(404)
    form = TrySampleForm()
    results = None
    if form.validate_on_submit():
        ruleset = rules_for(template)
        results = sample_results(template, form.sample.data, ruleset)
    return render_template(
        "import_admin/template_try.html", template=template, form=form, results=results, decisions=DECISIONS
    )


# --- rules ----------------------------------------------------------------------------------


@bp.get("/rules")
@requires(VIEW)
def rules():
    items = list(ordered_rules())
    templates_by_id = {t.id: t for t in ImportTemplate.select()}
    return render_template(
        "import_admin/rules.html", items=items, templates_by_id=templates_by_id, move_form=ConfirmForm()
    )


def _prepare_rule_form(form: RuleForm, rule: ImportRule | None = None) -> None:
    current = rule.template_id if rule else None
    payment_templates = ImportTemplate.select().where(
        ((ImportTemplate.is_active == True) | (ImportTemplate.id == (current or 0)))  # noqa: E712
        & (ImportTemplate.kind != "account_holders")
    )
    options = [
        (str(t.id), t.name) for t in payment_templates.order_by(ImportTemplate.is_builtin.desc(), ImportTemplate.name)
    ]
    form.template.choices = [("", "Every template")] + options
    form.try_template.choices = options


def _fill_rule_form(form: RuleForm, rule: ImportRule) -> None:
    form.name.data = rule.name
    form.template.data = str(rule.template_id or "")
    form.try_template.data = str(rule.template_id or "")
    group = rule.group
    form.join.data = group["join"]
    for number, condition in enumerate(group["conditions"][:MAX_CONDITIONS], start=1):
        getattr(form, f"field_{number}").data = condition.get("field", "")
        getattr(form, f"op_{number}").data = condition.get("op", "")
        getattr(form, f"value_{number}").data = condition.get("value", "")
    form.action.data = rule.action
    form.action_value.data = rule.action_value
    form.replacement.data = rule.replacement
    form.stops.data = rule.stops


def _rule_page(form: RuleForm, rule: ImportRule | None):
    """The add/change page: save, or "Try this rule" (which saves nothing)."""
    tried = None
    if form.validate_on_submit():
        values = form.values()
        trying = bool(form.try_rule.data)
        try:
            cleaned = clean_rule(values)
        except DomainError as exc:
            show_domain_error(form, exc, fallback="name")
        else:
            if trying:
                tried = _try_rule(form, cleaned, rule)
            else:
                try:
                    if rule is None:
                        rule = create_rule(g.user, values, ip_address=client_ip())
                        flash(f"Import rule {rule.name} added", "success")
                    else:
                        change_rule(rule, g.user, values, ip_address=client_ip())
                        flash(f"Import rule {rule.name} saved", "success")
                except DomainError as exc:
                    show_domain_error(form, exc, fallback="name")
                else:
                    return redirect(url_for("import_admin.rules"))
    return render_template(
        "import_admin/rule_form.html",
        form=form,
        rule=rule,
        tried=tried,
        decisions=DECISIONS,
        operators=OPERATORS,
        actions=ACTIONS,
    )


def _try_rule(form: RuleForm, cleaned: dict, rule: ImportRule | None) -> dict | None:
    sample = form.sample.data or ""
    if not sample.strip():
        form.sample.errors = list(form.sample.errors) + ["Paste some lines from a file to try the rule on"]
        return None
    template_id = form.try_template.data
    template = ImportTemplate.get_or_none(ImportTemplate.id == int(template_id)) if str(template_id).isdigit() else None
    if template is None or template.kind == "account_holders":
        form.try_template.errors = list(form.try_template.errors) + ["Choose the template to read the sample with"]
        return None
    applies = cleaned["template"] is None or cleaned["template"] == template.id
    candidate = compile_rule(cleaned)
    extra = dict(cleaned)
    if rule is not None:
        extra["id"] = rule.id
        extra["position"] = rule.position
    ruleset = rules_for(template, extra=extra if applies else None)
    results = sample_results(template, sample, ruleset, candidate if applies else None)
    return {"template": template, "applies": applies, "results": results, "problems": ruleset.problems}


@bp.route("/rules/add", methods=["GET", "POST"])
@requires(MANAGE)
def add_rule():
    form = RuleForm()
    _prepare_rule_form(form)
    return _rule_page(form, None)


@bp.route("/rules/<int:rule_id>/change", methods=["GET", "POST"])
@requires(MANAGE)
def change_rule_view(rule_id):
    rule = _rule(rule_id)
    form = RuleForm()
    _prepare_rule_form(form, rule)
    if request.method == "GET":
        _fill_rule_form(form, rule)
    return _rule_page(form, rule)


@bp.route("/rules/<int:rule_id>/<any(disable, enable):action>", methods=["GET", "POST"])
@requires(MANAGE)
def toggle_rule(rule_id, action):
    rule = _rule(rule_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        set_rule_active(rule, g.user, action == "enable", ip_address=client_ip())
        flash(f"Import rule {rule.name} turned {'on' if action == 'enable' else 'off'}", "success")
        return redirect(url_for("import_admin.rules"))
    return render_template("import_admin/rule_toggle.html", rule=rule, action=action, form=form)


@bp.post("/rules/<int:rule_id>/move/<any(up, down):direction>")
@requires(MANAGE)
def move_rule_view(rule_id, direction):
    rule = _rule(rule_id)
    form = ConfirmForm()
    if form.validate_on_submit() and move_rule(rule, g.user, direction, ip_address=client_ip()):
        flash(f"Import rule {rule.name} moved {direction}", "success")
    return redirect(url_for("import_admin.rules"))


@bp.get("/fields")
@requires(VIEW)
def fields():
    return render_template(
        "import_admin/fields.html",
        row_fields=ROW_FIELDS,
        format_fields=FORMAT_FIELDS,
        kinds=KINDS,
        operators=OPERATORS,
        actions=ACTIONS,
    )
