"""The citizen's payment journey: basket → GOV.UK Pay → outcome.

Pages, one question each (GOV.UK patterns, no JavaScript needed):

    /pay/items/<n>/payment-for   what the n-th payment is for (radios; a select that
                                 becomes an autocomplete when there are many funds)
    /pay/items/<n>/reference     the fund's reference, checked by the fund's rule
    /pay/items/<n>/amount        the amount, within the fund's and the method's limits
    /pay/address                 only when a fund in the basket needs one
    /pay/email                   optional, for the receipt
    /pay/check                   check your answers; add another; continue to payment
    /pay/return/<token>          where GOV.UK Pay sends the payer back (and the status page)

The basket lives in the session (server-signed, never hidden fields) and is re-checked in
full when the citizen presses "Continue to payment". Once submitted, every basket page
leads to that payment's status page, so the back button can never pay twice.
"""

from __future__ import annotations

import logging
import secrets

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from app.access import public
from app.domain import payments
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.payments import BasketLine, Payment
from app.email import queue_delivery
from app.forms.pay import (
    MAX_RADIOS,
    AddressForm,
    AmountForm,
    ButtonForm,
    EmailForm,
    FundForm,
    FundSelectForm,
    PayForm,
    ReferenceForm,
)
from app.routes.paging import is_partial

bp = Blueprint("pay", __name__, url_prefix="/pay")
log = logging.getLogger(__name__)

BASKET = "basket"


def gateway():
    return current_app.extensions["govuk_pay"]


@bp.before_request
def allow_redirects_to_govuk_pay():
    # "Continue to payment" and "Try again" are answered with a redirect to the card page.
    g.form_action_origins = [current_app.config["GOVUK_PAY_PAGE_ORIGIN"]]


@bp.after_request
def never_cache(response):
    # The back button must ask us again (and be sent to the payment's status), never show a stale basket.
    response.headers["Cache-Control"] = "no-store"
    return response


# ---------------------------------------------------------------------------
# The basket in the session
# ---------------------------------------------------------------------------


def _basket() -> dict:
    basket = session.get(BASKET)
    if not isinstance(basket, dict) or "key" not in basket:
        basket = {"key": secrets.token_urlsafe(24), "items": [], "draft": None, "email": None, "address": None}
        session[BASKET] = basket
    return basket


def _basket_after_reset() -> dict:
    session.pop(BASKET, None)
    return _basket()


def _save(basket: dict) -> None:
    session[BASKET] = basket
    session.modified = True


def _fund(code) -> Fund | None:
    if not isinstance(code, str):
        return None
    fund = Fund.by_code(code)
    if fund is None or fund.id not in {f.id for f in payments.citizen_funds()}:
        return None
    return fund


def _lines(basket: dict, *, skip: int | None = None) -> list[BasketLine]:
    lines = []
    for index, item in enumerate(basket["items"]):
        fund = Fund.by_code(item["fund"])
        if index != skip and fund is not None:
            lines.append(BasketLine(fund, item["reference"], item["amount"]))
    return lines


def _needs_address(basket: dict) -> bool:
    return any((f := Fund.by_code(item["fund"])) is not None and f.address_required for item in basket["items"])


def _submitted_redirect(basket: dict):
    """Once the basket has been sent to GOV.UK Pay, its pages lead to the payment's status."""
    token = basket.get("submitted")
    if token and payments.by_return_token(token) is not None:
        return redirect(url_for("pay.payment_status", token=token))
    return None


def _after_item(basket: dict):
    if _needs_address(basket) and not basket.get("address"):
        return redirect(url_for("pay.address"))
    if basket.get("email") is None:
        return redirect(url_for("pay.email"))
    return redirect(url_for("pay.check"))


def _draft(basket: dict, n: int) -> dict | None:
    draft = basket.get("draft")
    if isinstance(draft, dict) and draft.get("index") == n:
        return draft
    return None


def _item_or_draft(basket: dict, n: int) -> dict | None:
    """The answers so far for item n: the draft being filled in, else the item in the basket."""
    draft = _draft(basket, n)
    if draft is not None:
        return draft
    if n < len(basket["items"]):
        return basket["items"][n]
    return None


def _guard_item(basket: dict, n: int):
    """None if item n can be asked about now, else where to go instead."""
    token = basket.get("submitted")
    payment = payments.by_return_token(token) if token else None
    if payment is not None and payment.finished and n == 0:
        # "Start now" again after a finished payment: a new, empty basket.
        basket.clear()
        basket.update(_basket_after_reset())
        _save(basket)
    elif payment is not None:
        return redirect(url_for("pay.payment_status", token=token))
    if n < 0 or n > len(basket["items"]):
        return redirect(url_for("pay.check") if basket["items"] else url_for("pay.fund_page", n=0))
    if n == len(basket["items"]) and n >= payments.max_basket_items():
        return redirect(url_for("pay.check"))
    return None


def _method():
    return payments.online_method()


# ---------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------


@bp.get("")
@public
def start():
    return redirect(url_for("pages.start"))


@bp.route("/items/<int:n>/payment-for", methods=["GET", "POST"])
@public
def fund_page(n: int):
    basket = _basket()
    if (elsewhere := _guard_item(basket, n)) is not None:
        return elsewhere
    funds = payments.citizen_funds()
    if not funds or _method() is None:
        return render_template("pay/unavailable.html"), 503
    others = _lines(basket, skip=n)
    separate: list[Fund] = []
    if others:
        # One card payment goes to one GOV.UK Pay account: offer only funds that account takes.
        separate = [f for f in funds if f.pay_account != others[0].fund.pay_account]
        funds = [f for f in funds if f.pay_account == others[0].fund.pay_account]
    form_class = FundForm if len(funds) <= MAX_RADIOS else FundSelectForm
    form = form_class()
    form.fund.choices = [(f.code, f.name) for f in funds]
    if form_class is FundSelectForm:
        form.fund.choices = [("", "Select what you want to pay for")] + form.fund.choices
    current = _item_or_draft(basket, n)
    if request.method == "GET" and current:
        form.fund.data = current["fund"]
    if form.validate_on_submit():
        fund = _fund(form.fund.data)
        if fund is None:
            form.fund.errors = ["Select what you want to pay for"]
        elif others and others[0].fund.pay_account != fund.pay_account:
            form.fund.errors = [
                f"{fund.name} has to be paid separately from {others[0].fund.name}. "
                "Pay for what is in your basket first, then make another payment"
            ]
        else:
            existing = _item_or_draft(basket, n)
            if existing and existing.get("fund") == fund.code and n < len(basket["items"]):
                return redirect(url_for("pay.check"))  # "Change" without changing
            basket["draft"] = {"index": n, "fund": fund.code, "reference": None}
            _save(basket)
            return redirect(url_for("pay.reference", n=n))
    descriptions = {f.code: f.description for f in funds if f.description}
    return render_template(
        "pay/fund.html",
        form=form,
        n=n,
        basket=basket,
        descriptions=descriptions,
        use_select=form_class is FundSelectForm,
        separate=separate,
        back=_back(basket, n),
    )


def _back(basket: dict, n: int) -> str:
    if basket["items"]:
        return url_for("pay.check")
    return url_for("pages.start")


@bp.route("/items/<int:n>/reference", methods=["GET", "POST"])
@public
def reference(n: int):
    basket = _basket()
    if (elsewhere := _guard_item(basket, n)) is not None:
        return elsewhere
    current = _item_or_draft(basket, n)
    fund = _fund(current["fund"]) if current else None
    if fund is None:
        return redirect(url_for("pay.fund_page", n=n))
    form = ReferenceForm()
    if request.method == "GET" and current.get("reference"):
        form.reference.data = current["reference"]
    if form.validate_on_submit():
        check = payments.check_line(
            fund, form.reference.data or "", None, method=_method(), others=_lines(basket, skip=n)
        )
        if check.errors:
            form.reference.errors = [next(iter(check.errors.values()))]
        elif _draft(basket, n) is not None:
            basket["draft"]["reference"] = check.reference
            _save(basket)
            return redirect(url_for("pay.amount", n=n))
        else:
            # Changing the reference of an item already in the basket: re-check it with its amount.
            item = basket["items"][n]
            full = payments.check_line(
                fund, check.reference, item["amount"], method=_method(), others=_lines(basket, skip=n)
            )
            item["reference"] = check.reference
            _save(basket)
            if full.errors.get("amount"):
                return redirect(url_for("pay.amount", n=n))
            return redirect(url_for("pay.check"))
    return render_template("pay/reference.html", form=form, fund=fund, n=n, back=url_for("pay.fund_page", n=n))


@bp.route("/items/<int:n>/amount", methods=["GET", "POST"])
@public
def amount(n: int):
    basket = _basket()
    if (elsewhere := _guard_item(basket, n)) is not None:
        return elsewhere
    current = _item_or_draft(basket, n)
    fund = _fund(current["fund"]) if current else None
    if fund is None:
        return redirect(url_for("pay.fund_page", n=n))
    if not current.get("reference"):
        return redirect(url_for("pay.reference", n=n))
    form = AmountForm()
    if request.method == "GET" and current.get("amount") is not None:
        form.amount.process_data(current["amount"])
    if form.validate_on_submit():
        check = payments.check_line(
            fund, current["reference"], form.amount.data, method=_method(), others=_lines(basket, skip=n)
        )
        if check.errors:
            form.amount.errors = [check.errors.get("amount") or next(iter(check.errors.values()))]
        else:
            item = {"fund": fund.code, "reference": check.reference, "amount": form.amount.data}
            if n < len(basket["items"]):
                basket["items"][n] = item
            else:
                basket["items"].append(item)
            basket["draft"] = None
            _save(basket)
            return _after_item(basket)
    back = url_for("pay.reference", n=n)
    return render_template("pay/amount.html", form=form, fund=fund, n=n, back=back, reference=current["reference"])


@bp.route("/address", methods=["GET", "POST"])
@public
def address():
    basket = _basket()
    if (elsewhere := _submitted_redirect(basket)) is not None:
        return elsewhere
    if not basket["items"]:
        return redirect(url_for("pay.fund_page", n=0))
    form = AddressForm()
    if request.method == "GET" and basket.get("address"):
        for key, value in basket["address"].items():
            getattr(form, key).data = value
    if form.validate_on_submit():
        basket["address"] = {k: form.data[k] or "" for k in ("name", "line1", "line2", "town", "postcode")}
        _save(basket)
        return _after_item(basket)
    return render_template("pay/address.html", form=form, back=url_for("pay.check"))


@bp.route("/email", methods=["GET", "POST"])
@public
def email():
    basket = _basket()
    if (elsewhere := _submitted_redirect(basket)) is not None:
        return elsewhere
    if not basket["items"]:
        return redirect(url_for("pay.fund_page", n=0))
    form = EmailForm()
    if request.method == "GET" and basket.get("email"):
        form.email.data = basket["email"]
    if form.validate_on_submit():
        basket["email"] = form.email.data or ""
        _save(basket)
        return _after_item(basket)
    return render_template("pay/email.html", form=form, back=url_for("pay.check"))


# ---------------------------------------------------------------------------
# Check, remove, pay
# ---------------------------------------------------------------------------


def _address_text(address: dict | None) -> str:
    if not address:
        return ""
    return "\n".join(address[k] for k in ("line1", "line2", "town", "postcode") if address.get(k))


@bp.route("/check", methods=["GET", "POST"])
@public
def check():
    basket = _basket()
    if (elsewhere := _submitted_redirect(basket)) is not None:
        return elsewhere
    if not basket["items"]:
        return redirect(url_for("pay.fund_page", n=0))
    if _needs_address(basket) and not basket.get("address"):
        return redirect(url_for("pay.address"))
    lines = _lines(basket)
    form = PayForm()
    problems: list[str] = []
    if form.validate_on_submit():
        if form.basket_key.data != basket["key"]:
            # An old page (another tab, the back button): show the basket as it is now.
            return redirect(url_for("pay.check"))
        try:
            payment, _created = payments.create_payment(
                lines,
                submission_key=f"basket:{basket['key']}",
                method=_method(),
                email=basket.get("email") or "",
                payer_name=(basket.get("address") or {}).get("name", ""),
                payer_address=_address_text(basket.get("address")),
            )
        except payments.BasketInvalid as error:
            problems = error.problems
        else:
            basket["submitted"] = payment.return_token
            _save(basket)
            return _go_to_card_page(payment)
    form.basket_key.data = basket["key"]
    return render_template(
        "pay/check.html",
        form=form,
        basket=basket,
        lines=lines,
        total=sum(line.amount_pence for line in lines),
        can_add=len(basket["items"]) < payments.max_basket_items(),
        max_items=payments.max_basket_items(),
        needs_address=_needs_address(basket),
        address=basket.get("address"),
        problems=problems,
        remove_form=ButtonForm(),
    ), (400 if problems else 200)


@bp.post("/items/<int:n>/remove")
@public
def remove(n: int):
    basket = _basket()
    if (elsewhere := _submitted_redirect(basket)) is not None:
        return elsewhere
    form = ButtonForm()
    if form.validate_on_submit() and 0 <= n < len(basket["items"]):
        basket["items"].pop(n)
        basket["draft"] = None
        if not _needs_address(basket):
            basket["address"] = None
        _save(basket)
    if not basket["items"]:
        return redirect(url_for("pay.fund_page", n=0))
    return redirect(url_for("pay.check"))


def return_url_for(payment: Payment) -> str:
    base = current_app.config.get("PUBLIC_BASE_URL") or request.host_url.rstrip("/")
    return base + url_for("pay.payment_status", token=payment.return_token)


def _go_to_card_page(payment: Payment):
    """Send the payer to GOV.UK Pay's card page for this payment (creating it there if need be)."""
    try:
        client = gateway().client(payment.pay_account)
    except KeyError:
        log.error("No GOV.UK Pay API key for account %r (payment %s)", payment.pay_account, payment.reference)
        return render_template("pay/unavailable.html", payment=payment), 503
    try:
        next_url = payments.start_payment(payment, client, return_url_for(payment))
    except payments.PaymentServiceUnavailable as error:
        return render_template("pay/unavailable.html", payment=payment, message=error.message), 503
    if not next_url:
        return redirect(url_for("pay.payment_status", token=payment.return_token))
    return redirect(next_url, code=303)


# ---------------------------------------------------------------------------
# Back from GOV.UK Pay
# ---------------------------------------------------------------------------


def _payment_or_404(token: str) -> Payment:
    payment = payments.by_return_token(token)
    if payment is None:
        abort(404)
    return payment


def _refresh(payment: Payment, source: str) -> Payment:
    try:
        client = gateway().client(payment.pay_account)
    except KeyError:
        return payment
    applied = payments.refresh_payment(payment, client, source=source)
    queue_delivery(applied.receipt)
    return applied.payment


@bp.get("/return/<token>")
@public
def payment_status(token: str):
    """GOV.UK Pay's return URL, and the page that shows the payment's outcome.

    A GET that can record the outcome: it only brings our copy of the payment up to date
    with GOV.UK Pay (idempotently, as the webhook and the job also do); nothing the payer
    sends can change it. GOV.UK Pay appends nothing to the URL, and the token in it is
    unguessable and single-purpose (spec §12).
    """
    payment = _payment_or_404(token)
    if not payment.finished:
        payment = _refresh(payment, "return" if not is_partial() else "citizen")
    if payment.channel == "api" and payment.finished:
        target = payment.return_url if payment.status == "succeeded" else (payment.cancel_url or payment.return_url)
        if target:
            return redirect(target)
    if is_partial() and payment.finished:
        # The outcome has its own page (title, heading, panel): load it whole.
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url_for("pay.payment_status", token=token)
        return response
    template = "pay/_status.html" if is_partial() else "pay/status.html"
    response = make_response(
        render_template(
            template, payment=payment, items=list(payment.ordered_items()), outcome=payment.outcome, button=ButtonForm()
        )
    )
    response.headers["Vary"] = "HX-Request"
    return response


@bp.post("/return/<token>/continue")
@public
def resume(token: str):
    """Back to the card page for a payment still in progress (a fresh, single-use next_url)."""
    payment = _payment_or_404(token)
    if not ButtonForm().validate_on_submit() or payment.finished:
        return redirect(url_for("pay.payment_status", token=token))
    return _go_to_card_page(payment)


@bp.post("/return/<token>/try-again")
@public
def try_again(token: str):
    """A new payment for the same basket: GOV.UK Pay never lets a failed payment be retried."""
    payment = _payment_or_404(token)
    if not ButtonForm().validate_on_submit():
        return redirect(url_for("pay.payment_status", token=token))
    try:
        retry, _created = payments.retry_payment(payment)
    except payments.BasketInvalid as error:
        return render_template("pay/basket_changed.html", payment=payment, problems=error.problems), 400
    except DomainError:
        return redirect(url_for("pay.payment_status", token=token))
    basket = session.get(BASKET)
    if isinstance(basket, dict) and basket.get("submitted") == token:
        basket["submitted"] = retry.return_token
        _save(basket)
    return _go_to_card_page(retry)


@bp.post("/return/<token>/basket")
@public
def back_to_basket(token: str):
    """After a cancelled or failed payment: the same items back in an editable basket."""
    payment = _payment_or_404(token)
    if ButtonForm().validate_on_submit() and payment.finished and payment.status != "succeeded":
        address = None
        if payment.payer_address:
            parts = payment.payer_address.splitlines()
            if len(parts) == 3:  # stored without the optional second line
                parts.insert(1, "")
            parts += [""] * (4 - len(parts))
            address = dict(zip(("line1", "line2", "town", "postcode"), parts[:4], strict=True))
            address["name"] = payment.payer_name
        session[BASKET] = {
            "key": secrets.token_urlsafe(24),
            "items": [
                {"fund": item.fund.code, "reference": item.account_reference, "amount": item.amount_pence}
                for item in payment.ordered_items()
            ],
            "draft": None,
            "email": payment.email,
            "address": address,
        }
        return redirect(url_for("pay.check"))
    return redirect(url_for("pay.payment_status", token=token))


@bp.post("/new")
@public
def new_basket():
    """ "Make another payment": an empty basket."""
    if ButtonForm().validate_on_submit():
        session.pop(BASKET, None)
    return redirect(url_for("pay.fund_page", n=0))
