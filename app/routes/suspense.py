"""Suspense: the list (filters, age), an item's page (notes, allocations), and allocating.

Allocating is form → check your answers → confirm. The answers wait in the session between
the form and the check page (app/routes/add_journey.py), per item, with a one-time key that
becomes the allocation's submission key: confirming twice (double click, two tabs, the back
button) allocates once. The domain (app/domain/suspense.py) re-checks everything under a lock
when the allocation is confirmed.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from werkzeug.datastructures import MultiDict

from app.access import requires
from app.domain import suspense
from app.domain.errors import DomainError, NotFound
from app.domain.funds import Fund, visible_fund_ids, visible_funds
from app.domain.money import format_pence
from app.domain.suspense import AllocationLine, AllocationRefused, SuspenseFilters
from app.domain.users import Permission
from app.forms.settings import ConfirmForm
from app.forms.suspense import AllocationForm, NoteForm, SuspenseFilterForm
from app.routes import client_ip
from app.routes.add_journey import answers_form, forget_answers, keep_answers
from app.routes.paging import paginate, render_list

bp = Blueprint("suspense", __name__, url_prefix="/suspense")


def _pending(item_id: int) -> str:
    return f"pending_suspense_allocation_{item_id}"


def _key(item_id: int) -> str:
    return f"pending_suspense_allocation_key_{item_id}"


def _item(suspense_id: int):
    try:
        return suspense.visible_item(suspense_id, g.user)
    except NotFound:
        abort(404)


# ---------------------------------------------------------------------------
# The list
# ---------------------------------------------------------------------------


@bp.get("")
@requires(Permission.VIEW_LEDGER)
def list_items():
    form = SuspenseFilterForm(request.args)
    valid = form.validate() if request.args else True
    filters = SuspenseFilters()
    if valid:
        filters = SuspenseFilters(
            status=form.status.data or "open",
            age=form.age.data or "",
            source=form.source.data or "",
            text=form.text.data or "",
            amount_from=form.amount_from.data,
            amount_to=form.amount_to.data,
        )
    query = suspense.search(g.user, filters)
    count, remaining = suspense.totals(query)
    page = paginate(query)
    return render_list(
        "suspense/list.html",
        "suspense/_results.html",
        form=form,
        page=page,
        remaining_pence=remaining,
        today=suspense.uk_today(),
        has_errors=not valid,
    )


# ---------------------------------------------------------------------------
# One item
# ---------------------------------------------------------------------------


def _render_item(item, note_form: NoteForm, *, status: int = 200):
    visible = visible_fund_ids(g.user)
    allocations = [(a, a.entries()) for a in item.allocations_oldest_first()]
    return (
        render_template(
            "suspense/item.html",
            item=item,
            entry=item.ledger_entry,
            notes=list(item.notes_newest_first()),
            allocations=allocations,
            visible_fund_ids=visible,
            available=suspense.available_pence(item),
            today=suspense.uk_today(),
            note_form=note_form,
            has_errors=bool(note_form.errors),
        ),
        status,
    )


@bp.get("/<int:suspense_id>")
@requires(Permission.VIEW_LEDGER)
def view_item(suspense_id: int):
    return _render_item(_item(suspense_id), NoteForm(formdata=None))


@bp.post("/<int:suspense_id>/notes")
@requires(Permission.CORRECT_LEDGER)
def add_note(suspense_id: int):
    item = _item(suspense_id)
    form = NoteForm()
    if form.validate_on_submit():
        try:
            suspense.add_note(item, g.user, form.text.data, ip_address=client_ip())
        except DomainError as exc:
            form.text.errors = list(form.text.errors) + [exc.message]
        else:
            flash("Note added", "success")
            return redirect(url_for("suspense.view_item", suspense_id=item.id, _anchor="notes"))
    return _render_item(item, form)


# ---------------------------------------------------------------------------
# Allocating: form → check → confirm
# ---------------------------------------------------------------------------


def _prepare(form: AllocationForm) -> None:
    funds = [("", "Select a fund")] + [
        (f.code, f"{f.name} ({f.code})") for f in visible_funds(g.user) if f.enabled and not f.is_suspense
    ]
    for line in form.lines:
        line.form.fund.choices = funds


def _read(form: AllocationForm) -> tuple[list[AllocationLine], dict[str, str]]:
    """The filled-in lines as domain values (blank lines ignored), and what the form itself finds wrong."""
    lines: list[AllocationLine] = []
    errors: dict[str, str] = {}
    for row, entry in enumerate(form.lines):
        line = entry.form
        if line.is_blank():
            continue
        n = row + 1
        if line.amount.parse_error:
            errors[f"lines-{row}-amount"] = f"Line {n}: {line.amount.parse_error}"
        fund = Fund.by_code(line.fund.data) if line.fund.data else None
        lines.append(AllocationLine(fund, line.reference.data or "", line.amount.data, number=n))
    return lines, errors


def _first_filled_row(form: AllocationForm) -> int:
    for row, entry in enumerate(form.lines):
        if not entry.form.is_blank():
            return row
    return 0


def _show_errors(form: AllocationForm, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        if name.startswith("lines-"):
            _, row, part = name.split("-", 2)
            field = getattr(form.lines[int(row)].form, part)
        elif name == "note":
            field = form.note
        else:  # the total, or the item as a whole: shown at the first line's amount
            field = form.lines[_first_filled_row(form)].form.amount
        if message not in field.errors:
            field.errors = list(field.errors) + [message]


def _check(item, form: AllocationForm):
    """(checked allocation or None, errors by field)."""
    lines, errors = _read(form)
    if errors:
        return None, errors
    try:
        return suspense.check_allocation(item, g.user, lines), {}
    except AllocationRefused as exc:
        errors = dict(exc.errors)
        if "total" in errors and len(lines) > 1 and all(line.amount_pence is not None for line in lines):
            # Shown at the first line's amount: say it is the lines together that are too much.
            total = format_pence(sum(line.amount_pence for line in lines))
            message = errors["total"]
            errors["total"] = f"The lines add up to {total}: {message[:1].lower()}{message[1:]}"
        return None, errors
    except DomainError as exc:
        return None, {"total": exc.message}


@bp.route("/<int:suspense_id>/allocate", methods=["GET", "POST"])
@requires(Permission.CORRECT_LEDGER)
def allocate(suspense_id: int):
    item = _item(suspense_id)
    problem = suspense.can_allocate_message(item)
    if problem:
        forget_answers(_pending(item.id))
        flash(problem, "info")
        return redirect(url_for("suspense.view_item", suspense_id=item.id))
    form = answers_form(AllocationForm, _pending(item.id))
    _prepare(form)
    if request.method == "GET" and request.args.get("change") and session.get(_pending(item.id)):
        # Back from the check page: if something changed meanwhile (another allocation), say what.
        _, errors = _check(item, form)
        _show_errors(form, errors)
    elif form.validate_on_submit():
        checked, errors = _check(item, form)
        if errors:
            _show_errors(form, errors)
        else:
            keep_answers(_pending(item.id))
            session[_key(item.id)] = secrets.token_urlsafe(24)
            return redirect(url_for("suspense.check_allocation", suspense_id=item.id))
    elif form.is_submitted():
        _number_line_errors(form)
    error_list = _error_list(form)
    return render_template(
        "suspense/allocate.html",
        item=item,
        entry=item.ledger_entry,
        form=form,
        available=suspense.available_pence(item),
        error_list=error_list,
        has_errors=bool(error_list),
    )


def _number_line_errors(form: AllocationForm) -> None:
    """The form's own messages on a line (an amount that is not money) say which line."""
    for row, entry in enumerate(form.lines):
        for part in ("fund", "reference", "amount"):
            field = entry.form[part]
            field.errors = [m if m.startswith("Line ") else f"Line {row + 1}: {m}" for m in field.errors]


def _error_list(form: AllocationForm) -> list[dict]:
    """Every message, in the order of the fields on the page, for the error summary."""
    found = []
    for entry in form.lines:
        for part in ("fund", "reference", "amount"):
            field = entry.form[part]
            found.extend({"text": message, "href": f"#{field.id}"} for message in field.errors)
    found.extend({"text": message, "href": f"#{form.note.id}"} for message in form.note.errors)
    return found


@bp.route("/<int:suspense_id>/allocate/check", methods=["GET", "POST"])
@requires(Permission.CORRECT_LEDGER)
def check_allocation(suspense_id: int):
    item = _item(suspense_id)
    waiting = session.get(_pending(item.id))
    key = session.get(_key(item.id))
    if not waiting or not key:
        return redirect(url_for("suspense.allocate", suspense_id=item.id))
    form = AllocationForm(formdata=MultiDict(waiting), meta={"csrf": False})
    _prepare(form)
    form.validate()
    checked, errors = _check(item, form)
    if errors or checked is None:
        flash("Something has changed since you entered the allocation: check it again", "info")
        return redirect(url_for("suspense.allocate", suspense_id=item.id, change=1))
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        lines, _ = _read(form)
        try:
            result = suspense.allocate(
                item,
                g.user,
                lines,
                submission_key=f"suspense:{key}",
                note=form.note.data or "",
                ip_address=client_ip(),
            )
        except DomainError as exc:
            flash(f"The allocation was not made: {exc.message}", "info")
            return redirect(url_for("suspense.allocate", suspense_id=item.id, change=1))
        forget_answers(_pending(item.id))
        session.pop(_key(item.id), None)
        allocation = result.allocation
        flash(
            f"{format_pence(allocation.amount_pence)} allocated from suspense item {item.id} "
            f"({allocation.group_reference})",
            "success",
        )
        return redirect(url_for("suspense.view_item", suspense_id=item.id))
    return render_template(
        "suspense/check.html",
        item=item,
        entry=item.ledger_entry,
        checked=checked,
        note=form.note.data or "",
        confirm=confirm,
    )
