"""Transactions: search the ledger (filters, sorting, pages, CSV and XLSX downloads) and see one entry
(its timeline, a printable VAT receipt, a receipt e-mailed to the payer).

Everything is limited to the funds of the user's fund groups. The query building lives in
app/domain/transaction_search.py; this module reads the GET form, renders, and streams.
"""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from peewee import SQL, fn

from app.access import requires
from app.domain import audit, transaction_search
from app.domain.council import CouncilSettings
from app.domain.funds import Fund, visible_fund_ids
from app.domain.ledger import SOURCES, LedgerEntry
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.offices import Office
from app.domain.spreadsheets import csv_chunks, xlsx_chunks
from app.domain.transaction_search import SORTS, SearchFilters, Sort
from app.domain.ukdates import LONDON
from app.domain.users import Permission, User
from app.email import send_email
from app.forms.ledger import EmailReceiptForm, LedgerFilterForm
from app.routes import client_ip
from app.routes.paging import Page, is_partial, render_list

bp = Blueprint("ledger", __name__, url_prefix="/transactions")

# Filters shown as "selected filters", in the order of the form: (field name, heading).
FILTER_HEADINGS = [
    ("date_from", "From date"),
    ("date_to", "To date"),
    ("fund", "Fund"),
    ("method", "Method of payment"),
    ("account", "Account reference"),
    ("receipt", "Receipt reference"),
    ("amount_from", "Amount from"),
    ("amount_to", "Amount to"),
    ("text", "Payer or narrative contains"),
    ("user", "Taken by"),
    ("office", "Office"),
    ("source", "Source"),
]
# Filters under "More filters", which starts open when one of them is in use.
MORE_FILTERS = ("method", "source", "text", "amount_from", "amount_to", "user", "office")
DOWNLOAD_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _int(value) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 12 else None


def _visible_fund_ids() -> set[int]:
    """The funds of the user's fund groups, worked out once a request."""
    if "visible_fund_ids" not in g:
        g.visible_fund_ids = visible_fund_ids(g.user)
    return g.visible_fund_ids


def _search_form() -> tuple[LedgerFilterForm, bool]:
    form = LedgerFilterForm(request.args)
    funds = Fund.select(Fund.id, Fund.code, Fund.name).where(Fund.id.in_(sorted(_visible_fund_ids()) or [0]))
    form.fund.choices = [("", "All your funds")] + [
        (str(f.id), f"{f.name} ({f.code})") for f in funds.order_by(Fund.name)
    ]
    form.method.choices = [("", "Any method")] + [
        (str(m.id), m.name) for m in MethodOfPayment.select().order_by(MethodOfPayment.name)
    ]
    # Only staff who have taken money appear in the ledger; everyone else would be noise. EXISTS,
    # not IN (SELECT DISTINCT …): one index probe per user instead of reading every entry's user.
    takers = LedgerEntry.select(SQL("1")).where(LedgerEntry.user == User.id)
    form.user.choices = [("", "Anyone")] + [
        (str(u.id), u.name) for u in User.select(User.id, User.name).where(fn.EXISTS(takers)).order_by(User.name)
    ]
    form.office.choices = [("", "Any office")] + [(str(o.id), o.name) for o in Office.select().order_by(Office.name)]
    form.source.choices = [("", "Any source")] + list(SOURCES.items())
    valid = form.validate() if request.args else True
    return form, valid


def _filters(form: LedgerFilterForm) -> SearchFilters:
    return SearchFilters(
        date_from=form.date_from.data,
        date_to=form.date_to.data,
        fund_id=_int(form.fund.data),
        method_id=_int(form.method.data),
        account_reference=form.account.data or "",
        receipt_reference=form.receipt.data or "",
        amount_from=form.amount_from.data,
        amount_to=form.amount_to.data,
        text=form.text.data or "",
        user_id=_int(form.user.data),
        office_id=_int(form.office.data),
        source=form.source.data if form.source.data in SOURCES else "",
    )


def _args(**changes) -> dict:
    """The current query string (all values of each name: a date sends day, month and year) with
    `changes`; a change to None removes the name. Paging always starts again unless given."""
    args = request.args.to_dict(flat=False)
    args.pop("page", None)
    args.pop("submit", None)
    for name, value in changes.items():
        if value is None:
            args.pop(name, None)
        else:
            args[name] = value
    return args


def _selected_filters(form: LedgerFilterForm) -> list[dict]:
    """The filters in force, each with a link that removes it (MOJ filter "selected filters")."""
    selected = []
    for name, heading in FILTER_HEADINGS:
        field = form[name]
        if field.data in (None, ""):
            continue
        if name.startswith("date_"):
            text = f"{field.data:%-d %B %Y}"
        elif name.startswith("amount_"):
            text = format_pence(field.data)
        elif hasattr(field, "choices") and field.choices:
            text = dict(field.choices).get(field.data, "")
            if not text:
                continue
        else:
            text = field.data
        selected.append({"heading": heading, "text": text, "href": url_for("ledger.entries", **_args(**{name: None}))})
    return selected


def _sort_headers(sort: Sort) -> list[dict]:
    """Sortable column headings: a GET link each (works without JavaScript) and aria-sort."""
    headers = []
    for key, label in SORTS.items():
        current = key == sort.key
        if current:
            direction = "asc" if sort.descending else "desc"
        else:
            direction = Sort.parse(key, None).direction
        headers.append(
            {
                "key": key,
                "label": label,
                "href": url_for("ledger.entries", **_args(sort=key, direction=direction)),
                "aria_sort": ("descending" if sort.descending else "ascending") if current else "none",
                "numeric": key == "amount",
            }
        )
    return headers


@bp.get("")
@requires(Permission.VIEW_LEDGER)
def entries():
    form, valid = _search_form()
    if not valid and is_partial() and "submit" not in request.args:
        # htmx sent the form as someone types (a date with no year yet): keep the results shown
        # until the filters make sense, rather than reloading the page with an error summary.
        return Response(status=204)
    filters = _filters(form) if valid else SearchFilters()
    sort = Sort.parse(request.args.get("sort"), request.args.get("direction"))
    form.sort.data, form.direction.data = sort.key, sort.direction
    page_number = _int(request.args.get("page")) or 1
    found = transaction_search.results(_visible_fund_ids(), filters, sort, page_number)
    page = Page(items=found.entries, number=found.page, per_page=found.per_page, total=found.count.count)
    downloads = {kind: url_for("ledger.download", file_format=kind, **_args()) for kind in DOWNLOAD_TYPES}
    return render_list(
        "ledger/entries.html",
        "ledger/_results.html",
        form=form,
        page=page,
        counted=found.count,
        count_limit=transaction_search.COUNT_LIMIT,
        sort_headers=_sort_headers(sort),
        selected_filters=_selected_filters(form) if valid else [],
        more_open=not valid or any(request.args.get(name) for name in MORE_FILTERS),
        downloads=downloads,
        has_errors=not valid,
    )


@bp.get("/download.<any(csv, xlsx):file_format>")
@requires(Permission.VIEW_LEDGER)
def download(file_format: str):
    """Every entry the search matches, streamed: no row cap, memory flat however many there are."""
    form, valid = _search_form()
    if not valid:
        # A hand-edited URL: show the search page with its errors rather than a file of everything.
        return redirect(url_for("ledger.entries", **_args()))
    filters = _filters(form)
    sort = Sort.parse(request.args.get("sort"), request.args.get("direction"))
    rows = transaction_search.export_rows(_visible_fund_ids(), filters, sort)
    columns = transaction_search.EXPORT_COLUMNS
    chunks = (
        csv_chunks(columns, rows) if file_format == "csv" else xlsx_chunks(columns, rows, sheet_name="Transactions")
    )
    stamp = dt.datetime.now(LONDON).strftime("%Y-%m-%d-%H%M")
    response = Response(stream_with_context(chunks), mimetype=DOWNLOAD_TYPES[file_format])
    response.headers["Content-Disposition"] = f'attachment; filename="transactions-{stamp}.{file_format}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _visible_entry(receipt: str) -> LedgerEntry:
    item = LedgerEntry.by_receipt(receipt)
    # An entry outside the user's fund groups is "not found", not "forbidden": its existence is not disclosed.
    if item is None or item.fund_id not in _visible_fund_ids():
        abort(404)
    return item


def _actions(item: LedgerEntry) -> list[dict]:
    """What this user may do to put the entry right, linked from its page (each page checks again)."""
    from app.domain.corrections import why_not_correctable
    from app.domain.refunds import REFUNDABLE_SOURCES, refundable_pence
    from app.domain.suspense import SuspenseItem

    actions = []
    suspense = SuspenseItem.get_or_none(SuspenseItem.ledger_entry == item.id)
    if suspense is not None:
        if suspense.remaining_pence and g.user.can(Permission.CORRECT_LEDGER):
            actions.append(
                {"href": url_for("suspense.allocate", suspense_id=suspense.id), "text": "Allocate from suspense"}
            )
        return actions
    refundable = item.amount_pence > 0 and item.source in REFUNDABLE_SOURCES and refundable_pence(item) > 0
    if g.user.can(Permission.REQUEST_REFUNDS) and refundable:
        actions.append({"href": url_for("refunds.ask", receipt=item.receipt_reference), "text": "Refund"})
    if g.user.can(Permission.CORRECT_LEDGER):
        if why_not_correctable(item, "journal") is None:
            actions.append(
                {
                    "href": url_for("corrections.journal", receipt=item.receipt_reference),
                    "text": "Move to another fund or reference (journal)",
                }
            )
        if why_not_correctable(item, "reversal") is None:
            actions.append({"href": url_for("corrections.reverse", receipt=item.receipt_reference), "text": "Reverse"})
    return actions


def _entry_page(item: LedgerEntry, email_form: EmailReceiptForm, status: int = 200):
    events = transaction_search.timeline(item, _visible_fund_ids())
    return make_response(
        render_template(
            "ledger/entry.html",
            entry=item,
            timeline=events,
            actions=_actions(item),
            email_form=email_form,
            has_errors=bool(email_form.errors),
        ),
        status,
    )


@bp.get("/<receipt>")
@requires(Permission.VIEW_LEDGER)
def entry(receipt):
    item = _visible_entry(receipt)
    if item.receipt_reference != receipt:
        # Typed in lower case or without hyphens: one address per receipt.
        return redirect(url_for("ledger.entry", receipt=item.receipt_reference))
    return _entry_page(item, EmailReceiptForm(data={"email": item.payer_email}))


@bp.get("/<receipt>/receipt")
@requires(Permission.VIEW_LEDGER)
def vat_receipt(receipt):
    item = _visible_entry(receipt)
    return render_template("ledger/receipt.html", entry=item)


@bp.post("/<receipt>/email-receipt")
@requires(Permission.TAKE_PAYMENTS)
def email_receipt(receipt):
    item = _visible_entry(receipt)
    form = EmailReceiptForm()
    if not form.validate_on_submit():
        return _entry_page(item, form)
    subject, body = transaction_search.receipt_email(item, CouncilSettings.current().council_name)
    send_email(to=form.email.data, subject=subject, body=body, purpose="receipt")
    audit.record(
        transaction_search.RECEIPT_EMAILED,
        actor=g.user,
        object_type="ledger_entry",
        object_id=item.receipt_reference,
        summary=f"Receipt {item.receipt_reference} e-mailed to {form.email.data}",
        after={"to": form.email.data},
        ip_address=client_ip(),
    )
    flash(f"Receipt sent to {form.email.data}", "success")
    return redirect(url_for("ledger.entry", receipt=item.receipt_reference))
