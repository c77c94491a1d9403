"""Corrections: reverse or journal a transaction, transfer between accounts, and see them.

Each journey is form → check your answers → confirm → confirmation. The answers wait in the
session (app/routes/add_journey.py) with a submission key made when they were kept, so
confirming twice (a double click, the back button, a second tab) sends the same key and the
domain returns the correction it already made instead of making another. The check page and
the confirm step both re-check the answers against the ledger as it is then.

Transactions outside the user's fund groups are "not found", as on the transaction pages.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from werkzeug.datastructures import MultiDict

from app.access import requires
from app.domain import corrections
from app.domain.corrections import KINDS, Correction, Line, LinesRefused
from app.domain.errors import DomainError
from app.domain.funds import Fund, visible_fund_ids, visible_funds
from app.domain.ledger import LedgerEntry
from app.domain.money import format_pence
from app.domain.users import Permission, User
from app.forms.corrections import (
    CorrectionFilterForm,
    FindPaymentForm,
    JournalForm,
    ReversalForm,
    TransferForm,
)
from app.forms.settings import ConfirmForm
from app.routes import client_ip
from app.routes.add_journey import forget_answers, keep_answers, show_domain_error, waiting_form
from app.routes.paging import paginate, render_list

bp = Blueprint("corrections", __name__)
CORRECT = Permission.CORRECT_LEDGER
VIEW = Permission.VIEW_LEDGER
REVERSAL = "pending_reversal"
JOURNAL = "pending_journal"
TRANSFER = "pending_transfer"


# --- the waiting answers and their submission key --------------------------------------------


def _keep(key: str, receipt: str = "") -> None:
    keep_answers(key)
    session[f"{key}:submission"] = {"for": receipt, "key": secrets.token_urlsafe(24)}


def _submission(key: str, receipt: str = "") -> str | None:
    meta = session.get(f"{key}:submission")
    if not isinstance(meta, dict) or meta.get("for") != receipt:
        return None
    return meta.get("key")


def _answers_form(form_class, key: str, receipt: str = "", prepare=None):
    """The form: blank, refilled through "Change", or bound to what was just posted."""
    waiting = session.get(key)
    if request.method == "GET" and waiting and request.args.get("change") and _submission(key, receipt):
        form = form_class(formdata=MultiDict(waiting))
    else:
        form = form_class()
    if prepare:
        prepare(form)
    return form


def _waiting(form_class, key: str, receipt: str = "", prepare=None):
    if _submission(key, receipt) is None:
        return None
    return waiting_form(form_class, key, prepare)


def _refilled(form_class, key: str, prepare=None):
    """The waiting answers in a form that can be shown again (with CSRF) to put errors on."""
    form = form_class(formdata=MultiDict(session.get(key) or {}))
    if prepare:
        prepare(form)
    form.validate()  # for the field values; CSRF is not part of what is shown
    if hasattr(form, "csrf_token"):
        form.csrf_token.errors = []
    return form


def _nothing_waiting(key: str, receipt: str, start_url: str):
    """No answers wait. If this journey's last key made a correction (Confirm pressed twice), show it."""
    submission = _submission(key, receipt)
    if submission:
        made = Correction.get_or_none(Correction.submission_key == submission)
        if made is not None:
            return redirect(url_for("corrections.confirmation", group_reference=made.group_reference))
    return redirect(start_url)


def _done(key: str, result) -> object:
    forget_answers(key)  # the submission key stays: a second Confirm finds the correction it made
    return redirect(url_for("corrections.confirmation", group_reference=result.correction.group_reference))


# --- shared look-ups ------------------------------------------------------------------------


def _entry_or_404(receipt: str) -> LedgerEntry:
    entry = LedgerEntry.by_receipt(receipt)
    if entry is None or entry.fund_id not in visible_fund_ids(g.user):
        abort(404)
    return entry


def _correction_or_404(group_reference: str) -> Correction:
    correction = Correction.by_reference(group_reference)
    if correction is None:
        abort(404)
    if not Correction.for_funds(visible_fund_ids(g.user)).where(Correction.id == correction.id).exists():
        abort(404)
    return correction


def _fund_choices() -> list[tuple[str, str]]:
    funds = [f for f in visible_funds(g.user) if f.enabled]
    return [("", "Select a fund")] + [(str(f.id), f"{f.name} ({f.code})") for f in funds]


def _fund(value) -> Fund | None:
    text = str(value or "")
    return Fund.get_or_none(Fund.id == int(text)) if text.isdigit() else None


def _cannot(entry: LedgerEntry, verb: str, problem: str):
    return render_template("corrections/cannot.html", entry=entry, verb=verb, problem=problem)


def _money_left(entry: LedgerEntry) -> tuple[int, int]:
    left = corrections.remaining_pence(entry)
    return left, entry.amount_pence - left


# --- reversal -------------------------------------------------------------------------------


@bp.route("/transactions/<receipt>/reverse", methods=["GET", "POST"])
@requires(CORRECT)
def reverse(receipt):
    entry = _entry_or_404(receipt)
    problem = corrections.why_not_correctable(entry, "reversal")
    if problem:
        return _cannot(entry, "reverse", problem)
    form = _answers_form(ReversalForm, REVERSAL, entry.receipt_reference)
    if form.validate_on_submit():
        _keep(REVERSAL, entry.receipt_reference)
        return redirect(url_for("corrections.check_reversal", receipt=entry.receipt_reference))
    left, moved = _money_left(entry)
    return render_template("corrections/reverse.html", entry=entry, form=form, left=left, moved=moved)


@bp.route("/transactions/<receipt>/reverse/check", methods=["GET", "POST"])
@requires(CORRECT)
def check_reversal(receipt):
    entry = _entry_or_404(receipt)
    start = url_for("corrections.reverse", receipt=entry.receipt_reference)
    form = _waiting(ReversalForm, REVERSAL, entry.receipt_reference)
    if form is None:
        return _nothing_waiting(REVERSAL, entry.receipt_reference, start)
    problem = corrections.why_not_correctable(entry, "reversal")
    if problem:
        return _cannot(entry, "reverse", problem)
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            result = corrections.reverse(
                entry,
                g.user,
                form.reason.data,
                submission_key=_submission(REVERSAL, entry.receipt_reference),
                ip_address=client_ip(),
            )
        except DomainError as exc:
            problem = corrections.why_not_correctable(entry, "reversal")
            if problem:  # corrected by someone else while this page was open
                return _cannot(entry, "reverse", problem)
            shown = _refilled(ReversalForm, REVERSAL)
            show_domain_error(shown, exc, fallback="reason")
            left, moved = _money_left(entry)
            return render_template("corrections/reverse.html", entry=entry, form=shown, left=left, moved=moved)
        return _done(REVERSAL, result)
    left, moved = _money_left(entry)
    return render_template(
        "corrections/check.html",
        left=left,
        moved=moved,
        page_title=f"Check the reversal of receipt {entry.receipt_reference}",
        entry=entry,
        rows=[("Amount to reverse", left, "money"), ("Reason", form.reason.data, "")],
        lines=None,
        change_url=url_for("corrections.reverse", receipt=entry.receipt_reference, change=1),
        confirm=confirm,
        confirm_text="Reverse the payment",
        warning=f"This takes {format_pence(left)} off {entry.fund.name} account {entry.account_reference}. "
        "You cannot undo a reversal.",
    )


# --- journal --------------------------------------------------------------------------------


def _prepare_journal(form) -> None:
    form.fund.choices = _fund_choices()


def _journal_lines(form) -> list[Line]:
    return [Line(_fund(form.fund.data), form.reference.data or "", form.amount.data)]


def _journal_errors(form, exc: DomainError) -> None:
    if isinstance(exc, LinesRefused):
        for problem in exc.problems:
            field = problem.field if problem.field in ("fund", "reference", "amount") else "amount"
            target = getattr(form, field)
            if not target.errors:  # one message a field: the form's own comes first
                target.errors = list(target.errors) + [problem.message]
    else:
        show_domain_error(form, exc, fallback="amount")


def _journal_page(entry: LedgerEntry, form):
    left, moved = _money_left(entry)
    return render_template("corrections/journal.html", entry=entry, form=form, left=left, moved=moved)


@bp.route("/transactions/<receipt>/journal", methods=["GET", "POST"])
@requires(CORRECT)
def journal(receipt):
    entry = _entry_or_404(receipt)
    problem = corrections.why_not_correctable(entry, "journal")
    if problem:
        return _cannot(entry, "move", problem)
    form = _answers_form(JournalForm, JOURNAL, entry.receipt_reference, _prepare_journal)
    if form.validate_on_submit():
        try:
            corrections.check_journal_lines(entry, g.user, _journal_lines(form))
        except DomainError as exc:
            _journal_errors(form, exc)
        else:
            _keep(JOURNAL, entry.receipt_reference)
            return redirect(url_for("corrections.check_journal", receipt=entry.receipt_reference))
    return _journal_page(entry, form)


@bp.route("/transactions/<receipt>/journal/check", methods=["GET", "POST"])
@requires(CORRECT)
def check_journal(receipt):
    entry = _entry_or_404(receipt)
    start = url_for("corrections.journal", receipt=entry.receipt_reference)
    form = _waiting(JournalForm, JOURNAL, entry.receipt_reference, _prepare_journal)
    if form is None:
        return _nothing_waiting(JOURNAL, entry.receipt_reference, start)
    problem = corrections.why_not_correctable(entry, "journal")
    if problem:
        return _cannot(entry, "move", problem)
    try:
        lines = corrections.check_journal_lines(entry, g.user, _journal_lines(form))
    except DomainError as exc:
        shown = _refilled(JournalForm, JOURNAL, _prepare_journal)
        _journal_errors(shown, exc)
        return _journal_page(entry, shown)
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            result = corrections.journal(
                entry,
                g.user,
                form.reason.data,
                lines,
                submission_key=_submission(JOURNAL, entry.receipt_reference),
                ip_address=client_ip(),
            )
        except DomainError as exc:
            problem = corrections.why_not_correctable(entry, "journal")
            if problem:  # reversed or moved in full by someone else while this page was open
                return _cannot(entry, "move", problem)
            shown = _refilled(JournalForm, JOURNAL, _prepare_journal)
            _journal_errors(shown, exc)
            return _journal_page(entry, shown)
        return _done(JOURNAL, result)
    line = lines[0]
    left, moved = _money_left(entry)
    return render_template(
        "corrections/check.html",
        left=left,
        moved=moved,
        page_title=f"Check the journal from receipt {entry.receipt_reference}",
        entry=entry,
        rows=[
            ("Fund to move the money to", f"{line.fund.name} ({line.fund.code})", ""),
            ("Reference to move the money to", line.reference, ""),
            ("Amount to move", line.amount_pence, "money"),
            ("Left on the payment afterwards", left - line.amount_pence, "money"),
            ("Reason", form.reason.data, ""),
        ],
        lines=None,
        change_url=url_for("corrections.journal", receipt=entry.receipt_reference, change=1),
        confirm=confirm,
        confirm_text="Move the money",
        warning=None,
    )


# --- transfer -------------------------------------------------------------------------------


def _prepare_transfer(form) -> None:
    choices = _fund_choices()
    for row in form.lines:
        row.form.fund.choices = choices


def _transfer_lines(form) -> tuple[list[Line], list[int]]:
    """The lines filled in (blank rows ignored) and, for each, its row on the form."""
    lines, rows = [], []
    for index, row in enumerate(form.lines):
        if row.form.is_blank():
            continue
        lines.append(Line(_fund(row.form.fund.data), row.form.reference.data or "", row.form.amount.data))
        rows.append(index)
    return lines, rows


def _transfer_errors(form, exc: DomainError, rows: list[int]) -> list[str]:
    """Put line problems on their fields; return the problems about the lines as a whole."""
    overall = []
    problems = exc.problems if isinstance(exc, LinesRefused) else [None]
    for problem in problems:
        if problem is None:
            if exc.field == "reason":
                form.reason.errors = list(form.reason.errors) + [exc.message]
            else:
                overall.append(exc.message)
        elif problem.line is None or problem.field not in ("fund", "reference", "amount"):
            overall.append(problem.message)
        else:
            target = form.lines[rows[problem.line]].form[problem.field]
            if not target.errors:  # one message a field: the form's own comes first
                target.errors = list(target.errors) + [problem.message]
    return overall


def _transfer_page(form, overall: list[str]):
    errors = [{"text": message, "href": "#lines"} for message in overall]
    for row in form.lines:
        for part in ("fund", "reference", "amount"):
            for message in row.form[part].errors:
                errors.append({"text": message, "href": "#" + row.form[part].id})
    for message in form.reason.errors:
        errors.append({"text": message, "href": "#" + form.reason.id})
    return render_template("corrections/transfer.html", form=form, overall=overall, error_list=errors)


@bp.route("/corrections/transfer", methods=["GET", "POST"])
@requires(CORRECT)
def transfer():
    form = _answers_form(TransferForm, TRANSFER, "", _prepare_transfer)
    overall: list[str] = []
    if form.is_submitted():
        valid = form.validate()
        lines, rows = _transfer_lines(form)
        try:
            corrections.check_transfer_lines(g.user, lines)
        except DomainError as exc:
            overall = _transfer_errors(form, exc, rows)
        else:
            if valid:
                _keep(TRANSFER)
                return redirect(url_for("corrections.check_transfer"))
    return _transfer_page(form, overall)


@bp.route("/corrections/transfer/check", methods=["GET", "POST"])
@requires(CORRECT)
def check_transfer():
    form = _waiting(TransferForm, TRANSFER, "", _prepare_transfer)
    if form is None:
        return _nothing_waiting(TRANSFER, "", url_for("corrections.transfer"))
    given, rows = _transfer_lines(form)
    try:
        lines = corrections.check_transfer_lines(g.user, given)
    except DomainError as exc:
        shown = _refilled(TransferForm, TRANSFER, _prepare_transfer)
        return _transfer_page(shown, _transfer_errors(shown, exc, rows))
    confirm = ConfirmForm()
    if confirm.validate_on_submit():
        try:
            result = corrections.transfer(
                g.user, form.reason.data, lines, submission_key=_submission(TRANSFER), ip_address=client_ip()
            )
        except DomainError as exc:
            shown = _refilled(TransferForm, TRANSFER, _prepare_transfer)
            return _transfer_page(shown, _transfer_errors(shown, exc, rows))
        return _done(TRANSFER, result)
    return render_template(
        "corrections/check.html",
        page_title="Check the transfer",
        entry=None,
        rows=[("Reason", form.reason.data, "")],
        lines=lines,
        change_url=url_for("corrections.transfer", change=1),
        confirm=confirm,
        confirm_text="Make the transfer",
        warning=None,
    )


# --- finding a payment to correct -------------------------------------------------------------


@bp.get("/corrections/find")
@requires(CORRECT)
def find_payment():
    """Reverse or move a payment, starting from its receipt reference (a GET form: it changes nothing)."""
    form = FindPaymentForm(request.args)
    if request.args and form.validate():
        entry = LedgerEntry.by_receipt(form.receipt.data)
        if entry is None or entry.fund_id not in visible_fund_ids(g.user):
            form.receipt.errors = list(form.receipt.errors) + [
                "There is no payment with that receipt reference in your funds"
            ]
        else:
            endpoint = "corrections.reverse" if form.action.data == "reversal" else "corrections.journal"
            return redirect(url_for(endpoint, receipt=entry.receipt_reference))
    return render_template("corrections/find.html", form=form)


# --- seeing corrections ---------------------------------------------------------------------


@bp.get("/corrections")
@requires(VIEW)
def list_corrections():
    form = CorrectionFilterForm(request.args)
    form.kind.choices = [("", "All kinds")] + list(KINDS.items())
    valid = form.validate() if request.args else True
    query = Correction.for_funds(visible_fund_ids(g.user))
    if valid:
        text = "".join((form.reference.data or "").split()).upper()
        if text:
            entry = LedgerEntry.by_receipt(text)
            if entry is not None:
                query = query.where(
                    (Correction.entry == entry.id) | (Correction.group_reference == entry.group_reference)
                )
            else:
                query = query.where(Correction.group_reference == text)
        if form.kind.data in KINDS:
            query = query.where(Correction.kind == form.kind.data)
    query = query.select(Correction, User).join(User, on=(Correction.created_by == User.id))
    page = paginate(query.order_by(Correction.created_at.desc(), Correction.id.desc()))
    return render_list("corrections/list.html", "corrections/_results.html", form=form, page=page, has_errors=not valid)


def _shown_entries(correction: Correction) -> list[tuple[LedgerEntry, bool]]:
    """The correction's entries, each with whether the user may see its fund's details."""
    fund_ids = visible_fund_ids(g.user)
    return [(entry, entry.fund_id in fund_ids) for entry in correction.entries()]


@bp.get("/corrections/<group_reference>")
@requires(VIEW)
def view(group_reference):
    correction = _correction_or_404(group_reference)
    return render_template(
        "corrections/view.html",
        correction=correction,
        entries=_shown_entries(correction),
        fund_ids=visible_fund_ids(g.user),
    )


@bp.get("/corrections/<group_reference>/confirmation")
@requires(VIEW)
def confirmation(group_reference):
    correction = _correction_or_404(group_reference)
    return render_template("corrections/confirmation.html", correction=correction, entries=_shown_entries(correction))
