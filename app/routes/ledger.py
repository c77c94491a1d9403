"""Seeing ledger entries: a simple list and a details page, limited to the user's fund groups.

Full transaction search (filters, sorting, downloads) is built on this in the back-office work.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, render_template, request

from app.access import requires
from app.domain.funds import visible_fund_ids, visible_funds
from app.domain.ledger import LedgerEntry
from app.domain.users import Permission
from app.forms.ledger import LedgerFilterForm
from app.routes.paging import paginate, render_list

bp = Blueprint("ledger", __name__, url_prefix="/transactions")


@bp.get("")
@requires(Permission.VIEW_LEDGER)
def entries():
    fund_ids = visible_fund_ids(g.user)
    form = LedgerFilterForm(request.args)
    form.fund.choices = [("", "All your funds")] + [(str(f.id), f"{f.name} ({f.code})") for f in visible_funds(g.user)]
    valid = form.validate() if request.args else True
    query = LedgerEntry.for_funds(fund_ids)
    if valid:
        if form.receipt.data:
            entry = LedgerEntry.by_receipt(form.receipt.data)
            query = query.where(LedgerEntry.id == (entry.id if entry else 0))
        if form.account.data:
            query = query.where(LedgerEntry.account_reference == form.account.data.replace(" ", "").upper())
        if form.fund.data and form.fund.data.isdigit():
            query = query.where(LedgerEntry.fund == int(form.fund.data))
    count, total = LedgerEntry.totals(query)
    page = paginate(query.order_by(LedgerEntry.business_date.desc(), LedgerEntry.id.desc()))
    return render_list(
        "ledger/entries.html", "ledger/_results.html", form=form, page=page, total_pence=total, has_errors=not valid
    )


@bp.get("/<receipt>")
@requires(Permission.VIEW_LEDGER)
def entry(receipt):
    item = LedgerEntry.by_receipt(receipt)
    # An entry outside the user's fund groups is "not found", not "forbidden": its existence is not disclosed.
    if item is None or item.fund_id not in visible_fund_ids(g.user):
        abort(404)
    linked = list(LedgerEntry.linked(item))
    return render_template("ledger/entry.html", entry=item, linked=linked)
