"""Account holders: staff search and details, loading a back-office CSV extract, overriding a stop.

Staff see only the accounts of their fund groups' funds (another fund's account is "not
found"). Loading an extract is configuration (MANAGE_CONFIG); overriding a stop is a senior
finance officer's decision (APPROVE), recorded in the audit trail by the domain.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from app.access import requires
from app.domain.errors import DomainError
from app.domain.funds import Fund, visible_fund_ids, visible_funds
from app.domain.ledger import LedgerEntry
from app.domain.references import AccountHolder, load_account_holders_csv, override_stop, search_account_holders
from app.domain.users import Permission
from app.forms.accounts import FUND_COLUMN, AccountSearchForm, AccountUploadForm, StopOverrideForm
from app.routes import client_ip
from app.routes.paging import paginate, render_list

bp = Blueprint("accounts", __name__, url_prefix="/accounts")

RECENT_ENTRIES = 20
SHOWN_ERRORS = 100


def _visible_account(account_id: int) -> AccountHolder:
    account = AccountHolder.get_or_none(AccountHolder.id == account_id)
    # Another fund group's account is "not found", not "forbidden": its existence is not disclosed.
    if account is None or account.fund_id not in visible_fund_ids(g.user):
        abort(404)
    return account


@bp.get("")
@requires(Permission.VIEW_LEDGER)
def search():
    fund_ids = visible_fund_ids(g.user)
    form = AccountSearchForm(request.args)
    form.fund.choices = [("", "All your funds")] + [(str(f.id), f"{f.name} ({f.code})") for f in visible_funds(g.user)]
    valid = form.validate() if request.args else True
    wanted = fund_ids
    text = ""
    if valid:
        text = form.text.data or ""
        if form.fund.data and form.fund.data.isdigit():
            wanted = fund_ids & {int(form.fund.data)}
    page = paginate(search_account_holders(text, fund_ids=wanted, limit=None))
    return render_list(
        "accounts/search.html",
        "accounts/_results.html",
        form=form,
        page=page,
        has_errors=not valid,
        can_upload=g.user.can(Permission.MANAGE_CONFIG),
    )


@bp.get("/<int:account_id>")
@requires(Permission.VIEW_LEDGER)
def account(account_id):
    item = _visible_account(account_id)
    entries = list(
        LedgerEntry.select()
        .where((LedgerEntry.fund == item.fund_id) & (LedgerEntry.account_reference == item.reference))
        .order_by(LedgerEntry.business_date.desc(), LedgerEntry.id.desc())
        .limit(RECENT_ENTRIES)
    )
    return render_template(
        "accounts/account.html",
        account=item,
        entries=entries,
        recent_limit=RECENT_ENTRIES,
        can_override=item.on_stop and g.user.can(Permission.APPROVE),
    )


@bp.route("/<int:account_id>/stop-override", methods=["GET", "POST"])
@requires(Permission.APPROVE)
def stop_override(account_id):
    item = _visible_account(account_id)
    if not item.on_stop:
        flash("This account is not on stop, so there is nothing to override", "info")
        return redirect(url_for("accounts.account", account_id=item.id))
    form = StopOverrideForm()
    if form.validate_on_submit():
        try:
            override_stop(item, g.user, form.reason.data, ip_address=client_ip())
        except DomainError as exc:
            form.reason.errors = list(form.reason.errors) + [exc.message]
        else:
            flash(f"Stop overridden for {item.fund.code} account {item.reference}", "success")
            return redirect(url_for("accounts.account", account_id=item.id))
    return render_template("accounts/stop_override.html", account=item, form=form)


@bp.route("/upload", methods=["GET", "POST"])
@requires(Permission.MANAGE_CONFIG)
def upload():
    form = AccountUploadForm()
    funds = list(Fund.select().order_by(Fund.name))
    form.fund.choices = [
        ("", "Choose a fund"),
        (FUND_COLUMN, "The file has a “fund” column"),
    ] + [(str(f.id), f"{f.name} ({f.code})") for f in funds]
    if form.validate_on_submit():
        fund = None
        if form.fund.data != FUND_COLUMN:
            fund = Fund.get_or_none(Fund.id == int(form.fund.data)) if form.fund.data.isdigit() else None
            if fund is None:
                form.fund.errors = list(form.fund.errors) + ["Choose the fund the accounts belong to"]
        if form.fund.data == FUND_COLUMN or fund is not None:
            upload_file = form.file.data
            try:
                # The domain streams from the upload (werkzeug spools big files to disk).
                report = load_account_holders_csv(
                    fund, upload_file.stream, g.user, file_name=upload_file.filename, ip_address=client_ip()
                )
            except DomainError as exc:
                target = form.fund if exc.field == "fund" else form.file
                target.errors = list(target.errors) + [exc.message]
            else:
                return render_template(
                    "accounts/upload_result.html",
                    report=report,
                    file_name=upload_file.filename,
                    fund=fund,
                    shown_errors=report.errors[:SHOWN_ERRORS],
                )
    return render_template("accounts/upload.html", form=form)
