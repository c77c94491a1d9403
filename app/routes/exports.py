"""Exports: history and batches (finance), templates (administrators), preview and run (finance).

- /exports, /exports/<id>, download: VIEW_LEDGER, for batches of templates whose funds the user sees;
- void: APPROVE (senior finance officer), with a reason;
- /admin/export-templates: VIEW_CONFIG to read, MANAGE_CONFIG to add, change, disable;
- preview (GET, changes nothing) and run (POST): RUN_EXPORTS.
Rules live in app/domain/exports/.
"""

from __future__ import annotations

import datetime as dt
import json

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from peewee import fn

from app.access import requires
from app.db import utcnow
from app.domain.errors import DomainError
from app.domain.exports import runs
from app.domain.exports.formats import DELIMITER_NAMES, content_type, line_sources, record_sources
from app.domain.exports.runs import ExportBatch, ExportedEntry
from app.domain.exports.templates import ExportTemplate, change_template, create_template, set_template_enabled
from app.domain.funds import Fund, visible_fund_ids
from app.domain.ledger import SOURCES as ENTRY_SOURCES
from app.domain.ledger import LedgerEntry
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.ukdates import business_date
from app.domain.users import Permission
from app.forms.exports import (
    ExportTemplateForm,
    HistoryFilterForm,
    PreviewForm,
    RunForm,
    ToggleForm,
    VoidForm,
)
from app.routes import client_ip
from app.routes.paging import paginate, render_list

bp = Blueprint("exports", __name__)
PARTS = ("fields", "header", "trailer")


def _visible() -> set[int]:
    return visible_fund_ids(g.user)


def _batch(batch_id: int) -> ExportBatch:
    batch = ExportBatch.get_or_none(ExportBatch.id == batch_id)
    if batch is None or not runs.can_see_template(batch.template, _visible()):
        abort(404)
    return batch


def _template(template_id: int) -> ExportTemplate:
    template = ExportTemplate.get_or_none(ExportTemplate.id == template_id)
    if template is None:
        abort(404)
    return template


# --- history and batches ------------------------------------------------------------------------


@bp.get("/exports")
@requires(Permission.VIEW_LEDGER)
def history():
    visible = _visible()
    templates = runs.visible_templates(visible)
    form = HistoryFilterForm(request.args)
    form.template.choices = [("", "Any")] + [(str(t.id), f"{t.name} ({t.code})") for t in templates]
    valid = form.validate() if request.args else True
    template_id = int(form.template.data) if (form.template.data or "").isdigit() else None
    query = runs.history(
        visible,
        template_id=template_id,
        status=form.status.data or "",
        date_from=form.date_from.data if valid else None,
        date_to=form.date_to.data if valid else None,
    )
    page = paginate(query, per_page=25)
    return render_list(
        "exports/history.html",
        "exports/_history_results.html",
        form=form,
        page=page,
        has_errors=bool(form.errors),
        runnable=[t for t in templates if t.enabled] if g.user.can(Permission.RUN_EXPORTS) else [],
        format_pence=format_pence,
    )


@bp.get("/exports/<int:export_batch_id>")
@requires(Permission.VIEW_LEDGER)
def batch(export_batch_id: int):
    item = _batch(export_batch_id)
    first = (
        LedgerEntry.select()
        .join(ExportedEntry, on=(ExportedEntry.entry == LedgerEntry.id))
        .where(ExportedEntry.batch == item.id)
        .order_by(LedgerEntry.id)
        .limit(20)
    )
    return render_template(
        "exports/batch.html",
        batch=item,
        entries=list(first),
        format_pence=format_pence,
        can_void=g.user.can(Permission.APPROVE) and not item.is_void,
    )


@bp.get("/exports/<int:export_batch_id>/download")
@requires(Permission.VIEW_LEDGER)
def download(export_batch_id: int):
    item = _batch(export_batch_id)
    response = Response(runs.file_bytes(item), mimetype=content_type(item.file_format).split(";")[0])
    if item.file_format != "xlsx":
        response.headers["Content-Type"] = content_type(item.file_format)
    response.headers["Content-Disposition"] = f'attachment; filename="{item.file_name}"'
    response.headers["Content-Length"] = str(item.size_bytes)
    response.headers["X-Content-SHA256"] = item.sha256
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/exports/<int:export_batch_id>/void", methods=["GET", "POST"])
@requires(Permission.APPROVE)
def void(export_batch_id: int):
    item = _batch(export_batch_id)
    if item.is_void:
        flash("This batch is already void", "info")
        return redirect(url_for("exports.batch", export_batch_id=item.id))
    form = VoidForm()
    if form.validate_on_submit():
        try:
            runs.void_batch(item, g.user, form.reason.data, ip_address=client_ip())
        except DomainError as exc:
            form.reason.errors = list(form.reason.errors) + [exc.message]
        else:
            flash(f"Batch {item.file_name} voided: its transactions will go into the next run", "success")
            return redirect(url_for("exports.batch", export_batch_id=item.id))
    return render_template("exports/void.html", batch=item, form=form, format_pence=format_pence)


# --- templates ------------------------------------------------------------------------------------


@bp.get("/admin/export-templates")
@requires(Permission.VIEW_CONFIG)
def templates():
    items = list(ExportTemplate.select().order_by(ExportTemplate.enabled.desc(), ExportTemplate.name))
    last = dict(
        ExportBatch.select(ExportBatch.template, fn.MAX(ExportBatch.created_at)).group_by(ExportBatch.template).tuples()
    )
    return render_template("exports/templates.html", templates=items, last=last)


def _prepare(form: ExportTemplateForm) -> None:
    form.funds.choices = [(f.code, f"{f.name} ({f.code})") for f in Fund.select().order_by(Fund.name)]
    form.methods.choices = [
        (m.code, f"{m.name} ({m.code})") for m in MethodOfPayment.select().order_by(MethodOfPayment.name)
    ]
    form.sources.choices = list(ENTRY_SOURCES.items())


def _form_data(template: ExportTemplate) -> dict:
    definition = json.loads(template.definition)
    selection = definition.get("selection", {})
    csv_options = definition.get("csv", {})
    journal = definition.get("journal", {})
    delimiter = {v: k for k, v in DELIMITER_NAMES.items()}.get(csv_options.get("delimiter", ","), "comma")

    def rows(items):
        return [item | {"width": str(item.get("width") or "")} for item in items]

    return {
        "code": template.code,
        "name": template.name,
        "description": template.description,
        "kind": template.kind,
        "file_format": template.file_format,
        "funds": selection.get("funds", []),
        "methods": selection.get("methods", []),
        "sources": selection.get("sources", []),
        "delimiter": delimiter,
        "quote_all": csv_options.get("quote_all", False),
        "header_row": csv_options.get("header_row", True),
        "line_ending": definition.get("line_ending", "crlf"),
        "encoding": definition.get("encoding", "utf-8"),
        "allow_empty": definition.get("allow_empty", False),
        "file_name_pattern": template.file_name_pattern,
        "schedule": template.schedule,
        "schedule_time": template.schedule_time,
        "contra_ledger_code": journal.get("contra_ledger_code", ""),
        "contra_cost_centre": journal.get("contra_cost_centre", ""),
        "vat_ledger_code": journal.get("vat_ledger_code", ""),
        "vat_cost_centre": journal.get("vat_cost_centre", ""),
        "journal_description": journal.get("description", ""),
        "fields": rows(definition.get("fields", [])),
        "header": rows(definition.get("header", [])),
        "trailer": rows(definition.get("trailer", [])),
    }


def _values(form: ExportTemplateForm) -> tuple[dict, dict[str, list[int]]]:
    """The template's values from the form, and for each part which form row each kept field came from."""
    positions: dict[str, list[int]] = {}

    def rows(part: str) -> list[dict]:
        out = []
        positions[part] = []
        for index, entry in enumerate(getattr(form, part).entries):
            row = entry.form
            if not row.source.data:
                continue
            width_text = (row.width.data or "").strip()
            if width_text and not width_text.isdigit():
                raise DomainError("Enter the width as a whole number, like 10", f"{part}:{len(out)}:width")
            out.append(
                {
                    "source": row.source.data,
                    "heading": row.heading.data or "",
                    "value": row.value.data or "",
                    "unit": row.unit.data or "pounds",
                    "sign": row.sign.data or "as_is",
                    "width": int(width_text) if width_text else 0,
                    "align": row.align.data or "left",
                    "pad": (row.pad.data or " ")[:2] if (row.pad.data or "") != "" else " ",
                }
            )
            positions[part].append(index)
        return out

    definition = {
        "selection": {
            "funds": form.funds.data or [],
            "methods": form.methods.data or [],
            "sources": form.sources.data or [],
        },
        "csv": {
            "delimiter": DELIMITER_NAMES.get(form.delimiter.data, ","),
            "quote_all": bool(form.quote_all.data),
            "header_row": bool(form.header_row.data),
        },
        "line_ending": form.line_ending.data,
        "encoding": form.encoding.data,
        "allow_empty": bool(form.allow_empty.data),
        "journal": {
            "contra_ledger_code": form.contra_ledger_code.data or "",
            "contra_cost_centre": form.contra_cost_centre.data or "",
            "vat_ledger_code": form.vat_ledger_code.data or "",
            "vat_cost_centre": form.vat_cost_centre.data or "",
            "description": form.journal_description.data or "",
        },
    }
    values = {
        "code": form.code.data,
        "name": form.name.data,
        "description": form.description.data,
        "kind": form.kind.data,
        "file_format": form.file_format.data,
        "file_name_pattern": form.file_name_pattern.data,
        "schedule": form.schedule.data,
        "schedule_time": form.schedule_time.data,
    }
    try:
        for part in PARTS:
            definition[part] = rows(part)
    finally:
        values["definition"] = definition
    return values, positions


def _show_error(form: ExportTemplateForm, exc: DomainError, positions: dict[str, list[int]]) -> None:
    name = exc.field or "name"
    if ":" in name:
        part, index, attribute = (name.split(":") + ["source"])[:3]
        entries = getattr(form, part).entries
        mapped = positions.get(part, [])
        position = mapped[int(index)] if int(index) < len(mapped) else min(int(index), len(entries) - 1)
        row = entries[position].form
        target = getattr(row, attribute, row.source)
        target.errors = list(target.errors) + [exc.message]
        row._errors = None
        getattr(form, part).errors = [e.errors for e in entries]
    else:
        aliases = {"selection": "funds", "description": "journal_description"}
        target = getattr(form, aliases.get(name, name), None)
        if target is None or not hasattr(target, "errors") or name in PARTS:
            if name in PARTS and getattr(form, name).entries:
                _show_error(form, DomainError(exc.message, f"{name}:0:source"), {name: [0]})
                return
            target = form.name
        target.errors = list(target.errors) + [exc.message]
    form._errors = None


def _blank_rows(form: ExportTemplateForm) -> None:
    """One empty row per part to fill in (the "add another" buttons give more)."""
    for part in PARTS:
        entries = getattr(form, part).entries
        if not entries or entries[-1].form.source.data:
            getattr(form, part).append_entry()


def _template_form(template: ExportTemplate | None):
    adding = template is None
    if request.method == "POST":
        form = ExportTemplateForm()
    elif template is not None:
        form = ExportTemplateForm(data=_form_data(template))
    else:
        form = ExportTemplateForm(data={"header_row": True, "fields": [{"source": ""}]})
    _prepare(form)
    if not adding:
        form.code.data = template.code
        form.code.raw_data = [template.code]
    return form


def _edit(template: ExportTemplate | None):
    adding = template is None
    form = _template_form(template)
    if request.method == "POST":
        for part, button in (("fields", "add_field"), ("header", "add_header"), ("trailer", "add_trailer")):
            if getattr(form, button).data:
                if len(getattr(form, part).entries) < 40:
                    getattr(form, part).append_entry()
                return render_template("exports/template_form.html", form=form, template=template, adding=adding)
    if form.validate_on_submit():
        positions: dict[str, list[int]] = {}
        try:
            values, positions = _values(form)
            if adding:
                template = create_template(g.user, values, ip_address=client_ip())
            else:
                change_template(template, g.user, values, ip_address=client_ip())
        except DomainError as exc:
            _show_error(form, exc, positions)
        else:
            flash(f"Export template {template.code} saved", "success")
            return redirect(url_for("exports.view_template", export_template_id=template.id))
    if request.method == "GET":
        _blank_rows(form)
    return render_template("exports/template_form.html", form=form, template=template, adding=adding)


@bp.route("/admin/export-templates/add", methods=["GET", "POST"])
@requires(Permission.MANAGE_CONFIG)
def add_template():
    return _edit(None)


@bp.get("/admin/export-templates/<int:export_template_id>")
@requires(Permission.VIEW_CONFIG)
def view_template(export_template_id: int):
    template = _template(export_template_id)
    definition = json.loads(template.definition)
    sources = line_sources(template.kind)
    records = record_sources()
    return render_template(
        "exports/template.html",
        template=template,
        definition=definition,
        line_sources=sources,
        record_sources=records,
        batches=list(template.batches.order_by(ExportBatch.id.desc()).limit(5)),
        delimiter_names={v: k for k, v in DELIMITER_NAMES.items()},
        format_pence=format_pence,
    )


@bp.route("/admin/export-templates/<int:export_template_id>/change", methods=["GET", "POST"])
@requires(Permission.MANAGE_CONFIG)
def edit_template(export_template_id: int):
    return _edit(_template(export_template_id))


@bp.route("/admin/export-templates/<int:export_template_id>/<any(disable, enable):action>", methods=["GET", "POST"])
@requires(Permission.MANAGE_CONFIG)
def toggle_template(export_template_id: int, action: str):
    template = _template(export_template_id)
    form = ToggleForm()
    if form.validate_on_submit():
        set_template_enabled(template, g.user, action == "enable", ip_address=client_ip())
        flash(f"Export template {template.code} {action}d", "success")
        return redirect(url_for("exports.view_template", export_template_id=template.id))
    return render_template("exports/toggle.html", template=template, action=action, form=form)


# --- preview and run --------------------------------------------------------------------------


def _runnable(template_id: int) -> ExportTemplate:
    template = _template(template_id)
    if not runs.can_see_template(template, _visible()):
        abort(404)
    return template


def _yesterday() -> dt.date:
    return business_date(utcnow()) - dt.timedelta(days=1)


def _render_preview(template, until_form, run_form, until, status=200):
    result = None
    error = None
    if until is not None:
        try:
            result = runs.preview(template, until)
        except DomainError as exc:
            error = exc.message
    response = render_template(
        "exports/preview.html",
        template=template,
        form=until_form,
        run_form=run_form,
        result=result,
        error=error,
        until=until,
        format_pence=format_pence,
    )
    return response, status


@bp.get("/admin/export-templates/<int:export_template_id>/preview")
@requires(Permission.RUN_EXPORTS)
def preview(export_template_id: int):
    template = _runnable(export_template_id)
    if "until" in request.args:
        form = PreviewForm(request.args)
        until = form.until.data if form.validate() else None
    else:
        form = PreviewForm(data={"until": _yesterday()})
        until = _yesterday()
    run_form = RunForm(data={"until": until.isoformat() if until else ""})
    return _render_preview(template, form, run_form, until)


@bp.post("/admin/export-templates/<int:export_template_id>/run")
@requires(Permission.RUN_EXPORTS)
def run(export_template_id: int):
    template = _runnable(export_template_id)
    run_form = RunForm()
    until = None
    if run_form.validate_on_submit():
        try:
            until = dt.date.fromisoformat(run_form.until.data)
        except ValueError:
            run_form.until.errors = ["Enter the cut-off date as a real date"]
    form = PreviewForm(data={"until": until or _yesterday()}, meta={"csrf": False})
    if until is not None:
        try:
            batch = runs.run_export(template, until, actor=g.user, trigger="manual", ip_address=client_ip())
        except DomainError as exc:
            form.until.errors = [exc.message]
        else:
            flash(
                f"Exported {batch.entry_count:,} transactions ({format_pence(batch.total_pence)}) to {batch.file_name}",
                "success",
            )
            return redirect(url_for("exports.batch", export_batch_id=batch.id))
    elif not run_form.until.errors:
        form.until.errors = ["Enter the cut-off date"]
    else:
        form.until.errors = list(run_form.until.errors)
    return _render_preview(template, form, run_form, until)
