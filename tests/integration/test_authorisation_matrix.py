"""Every route, requested by every kind of user, gets the outcome its access declaration promises.

The expected outcome comes from the view's own `.access` (app/access.py) and the user's
permissions (app/domain/users.py ROLES), so the matrix never drifts from the code. Each rule in
app.url_map gets concrete URLs (every settings section, every allowed <action>, real ids), and the
test fails if any endpoint is not exercised: a new route needs a way to build its URL here.

GET only, so nothing changes; routes that only accept POST are posted to with a valid CSRF token
and an empty body.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from flask import Flask, url_for
from werkzeug.routing import AnyConverter, Rule

from app.access import API_KEY_PREFIX, PUBLIC, SIGNED_IN
from app.db import utcnow
from app.domain.api_keys import ApiKey, create_api_key
from app.domain.audit import AuditEvent
from app.domain.funds import Fund, visible_fund_ids
from app.domain.ledger import LedgerEntry
from app.domain.outbox import OutboxMessage
from app.domain.payments import Payment, PaymentItem
from app.domain.references import AccountHolder, CheckDigitConfig, ReferenceFormat
from app.domain.users import Permission, User
from app.domain.vat import VatCode
from app.routes.admin_sections import SECTIONS
from tests.pages import DEMO_EMAILS, csrf_token

IDENTITIES = ["anonymous", "admin", "finance", "senior", "auditor", "housing", "admin-outside-demo-mode"]
# Outside demo mode the outbox does not exist, even for those allowed to read it.
DEMO_ONLY = {"feedback_admin.outbox", "feedback_admin.outbox_message"}
# A route with an <int:item_id> but no <slug> names its model here.
ITEM_MODELS = {"admin.add_vat_rate": VatCode}


@dataclass(frozen=True)
class Case:
    endpoint: str
    url: str
    methods: frozenset[str]


def _argument_values(rule: Rule, user: User | None, names: dict) -> list[dict]:
    """Every combination of concrete values for the rule's arguments."""
    choices: dict[str, list] = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            choices[name] = sorted(converter.items)
        elif name == "slug":
            choices[name] = sorted(SECTIONS)
        elif name == "item_id":
            continue  # depends on the slug: filled in below
        elif name in names:
            choices[name] = [names[name](user)]
        else:
            raise AssertionError(
                f"{rule.endpoint} ({rule.rule}): the authorisation matrix does not know how to fill <{name}>. "
                "Add a value for it in tests/integration/test_authorisation_matrix.py"
            )
    combinations = [dict(zip(choices, values, strict=True)) for values in itertools.product(*choices.values())]
    if "item_id" in rule._converters:
        for values in combinations:
            if "slug" in values:
                model = SECTIONS[values["slug"]].model
            elif rule.endpoint in ITEM_MODELS:
                model = ITEM_MODELS[rule.endpoint]
            else:
                raise AssertionError(f"{rule.endpoint}: say which model its <item_id> is in ITEM_MODELS")
            item = model.select().order_by(model.id).first()
            assert item is not None, f"no {model.__name__} row to use for {rule.endpoint}"
            values["item_id"] = item.id
    return combinations


def _receipt_for(user: User | None) -> str:
    query = LedgerEntry.select().order_by(LedgerEntry.id)
    if user is not None and user.can(Permission.VIEW_LEDGER):
        query = query.where(LedgerEntry.fund.in_(list(visible_fund_ids(user))))
    entry = query.first()
    assert entry is not None, "the demo ledger has no entry this user can see"
    return entry.receipt_reference


def _account_for(user: User | None) -> int:
    query = AccountHolder.select().order_by(AccountHolder.on_stop_message.desc(), AccountHolder.id)
    if user is not None and user.can(Permission.VIEW_LEDGER):
        query = query.where(AccountHolder.fund.in_(list(visible_fund_ids(user))))
    account = query.first()
    assert account is not None, "the demo council has no account holder this user can see"
    return account.id


def _matrix_payments() -> dict[str, Payment]:
    """A finished (failed) card payment per fund group's fund, so no page needs GOV.UK Pay."""
    from app.domain.funds import Fund
    from app.domain.methods import MethodOfPayment

    made = {}
    for code in ("CTAX", "HRENT"):
        submission = f"matrix:{code}"
        payment = Payment.get_or_none(Payment.submission_key == submission)
        if payment is None:
            payment = Payment.create(
                reference=f"PAY-MTRX-{code[:4]}",
                submission_key=submission,
                pay_account="default",
                method=MethodOfPayment.by_code("WEB"),
                status="failed",
                amount_pence=100,
                description=code,
                return_token=f"matrix-return-token-{code.lower()}-0123456789",
                finished_at=utcnow(),
            )
            PaymentItem.create(
                payment=payment, position=1, fund=Fund.by_code(code), account_reference="1", amount_pence=100
            )
        made[code] = payment
    telephone = Payment.get_or_none(Payment.submission_key == "matrix:telephone")
    if telephone is None:
        telephone = Payment.create(
            reference="PAY-MTRX-TEL",
            submission_key="matrix:telephone",
            channel="telephone",
            moto=True,
            pay_account="default",
            method=MethodOfPayment.by_code("TEL"),
            status="failed",
            amount_pence=100,
            description="CTAX",
            return_token="matrix-telephone-token-0123456789",
            finished_at=utcnow(),
        )
        PaymentItem.create(
            payment=telephone, position=1, fund=Fund.by_code("CTAX"), account_reference="1", amount_pence=100
        )
    made["telephone"] = telephone
    return made


def _staff_payment_for(user: User | None) -> str:
    """A staff payment in a fund the user can see (CTAX, or HRENT for housing staff)."""
    from app.domain.funds import Fund
    from app.domain.methods import MethodOfPayment
    from app.domain.references.demo import generate_valid_reference
    from app.domain.staff_payments import StaffLine, take_staff_payment

    code = "HRENT" if user is not None and Fund.by_code("CTAX").id not in visible_fund_ids(user) else "CTAX"
    taker = User.get(User.email == DEMO_EMAILS["housing" if code == "HRENT" else "finance"])
    import random

    line = StaffLine(Fund.by_code(code), generate_valid_reference(code, random.Random(1)), 100)
    payment, _ = take_staff_payment(
        [line], method=MethodOfPayment.by_code("CASH"), actor=taker, office=None, submission_key=f"matrix:{code}"
    )
    return payment.reference


def _refund_for(user: User | None) -> str:
    """A refund awaiting approval on a payment the user can see."""
    from app.domain.refunds import Refund, request_refund

    receipt = _receipt_for(user)
    entry = LedgerEntry.get(LedgerEntry.receipt_reference == receipt)
    existing = Refund.get_or_none(Refund.entry == entry)
    if existing:
        return existing.reference
    asker = User.get(
        User.email == DEMO_EMAILS["housing" if user and user.email == DEMO_EMAILS["housing"] else "finance"]
    )
    return request_refund(entry, asker, 1, "Matrix", submission_key=f"matrix:{receipt}")[0].reference


def _correction_for(user: User | None) -> str:
    """A reversal the user can see: of the newest entry they can see (other rows use the oldest)."""
    from app.domain.corrections import NOT_CORRECTABLE, Correction, reverse, why_not_correctable

    fund_ids = visible_fund_ids(user) if user is not None and user.can(Permission.VIEW_LEDGER) else None
    query = Correction.select() if fund_ids is None else Correction.for_funds(fund_ids)
    found = query.order_by(Correction.id).first()
    if found:
        return found.group_reference
    entries = LedgerEntry.select().where(LedgerEntry.corrects.is_null() & LedgerEntry.source.not_in(NOT_CORRECTABLE))
    if fund_ids is not None:
        entries = entries.where(LedgerEntry.fund.in_(list(fund_ids)))
    # Money in suspense is allocated, not reversed: take the newest entry that can be corrected.
    entry = next(e for e in entries.order_by(LedgerEntry.id.desc()) if why_not_correctable(e, "reversal") is None)
    senior = User.get(User.email == DEMO_EMAILS["senior"])
    return reverse(entry, senior, "Matrix", submission_key=f"matrix:{entry.id}").correction.group_reference


def _suspense_item_for(user: User | None) -> int:
    """An open suspense item the user can see (a suspense fund of their own if they see none)."""
    from app.domain.funds import FundGroupFund
    from app.domain.methods import MethodOfPayment
    from app.domain.suspense import put_into_suspense

    funds = Fund.select().where(Fund.is_suspense == True).order_by(Fund.id)  # noqa: E712
    if user is not None and user.can(Permission.VIEW_LEDGER):
        funds = funds.where(Fund.id.in_(list(visible_fund_ids(user))))
    fund = funds.first()
    if fund is None:
        fund = Fund.create(code=f"MX{user.id}", name="Matrix suspense", is_suspense=True)
        FundGroupFund.create(fund_group=user.fund_groups().first(), fund=fund)
    item, _ = put_into_suspense(
        fund, 1000, MethodOfPayment.by_code("BACS"), source="bank", idempotency_key=f"matrix:suspense:{fund.code}"
    )
    return item.id


def _import_batch_for(_user: User | None) -> int:
    """A previewed allpay import (one line), uploaded by the finance officer."""
    import io

    from flask import current_app

    from app.domain.imports import batches
    from app.domain.imports.templates import ImportTemplate, ensure_builtin_templates, set_demo_template_defaults

    found = batches.ImportBatch.select().where(batches.ImportBatch.file_name == "matrix.txt").first()
    if found is not None:
        return found.id
    ensure_builtin_templates()
    set_demo_template_defaults()
    # The sample line of spec/file-formats.md §1, and its trailer.
    data = (
        b" 3356107000669297          60.00T30/06/2022\r\n\r\n"
        b"Total Amount Updated onto System: 60.00\r\nTotal Transactions updated onto System: 1\r\n"
    )
    result = batches.preview(
        ImportTemplate.builtin("allpay"),
        "matrix.txt",
        io.BytesIO(data),
        User.get(User.email == DEMO_EMAILS["finance"]),
        directory=current_app.config["IMPORT_STORAGE_DIR"],
    )
    return result.batch.id


def _payment_for(user: User | None, made: dict[str, Payment]) -> str:
    if user is not None and Fund.by_code("CTAX").id not in visible_fund_ids(user):
        return made["HRENT"].reference
    return made["CTAX"].reference


def _import_template_id(_user: User | None) -> int:
    from app.domain.imports.templates import ImportTemplate

    return ImportTemplate.builtin("allpay").id


def _import_rule_id(_user: User | None) -> int:
    from app.domain.imports.rules import ImportRule, create_rule

    rule = ImportRule.select().order_by(ImportRule.id).first()
    if rule is None:
        condition = {"field": "reference", "op": "equals", "value": "MATRIX"}
        rule = create_rule(None, {"name": "Matrix", "join": "all", "conditions": [condition], "action": "skip"})
    return rule.id


def _export_template_for(user: User | None) -> int:
    """An export template whose funds the user sees (a rents one for housing staff)."""
    from app.domain.exports.templates import PRESETS, ExportTemplate, create_template

    if user is None or Fund.by_code("CTAX").id in visible_fund_ids(user) or not user.can(Permission.VIEW_LEDGER):
        return ExportTemplate.by_code("CTAXDAILY").id
    template = ExportTemplate.by_code("MXRENT")
    if template is None:
        preset = next(p for p in PRESETS if p["code"] == "CTAXDAILY")
        definition = preset["definition"] | {"selection": {"funds": ["HRENT"]}, "allow_empty": True}
        template = create_template(None, preset | {"code": "MXRENT", "definition": definition})
    return template.id


def _export_batch_for(user: User | None) -> int:
    """A batch of that template (made once; an empty file if there is nothing to export)."""
    import datetime as dt

    from app.domain.exports.runs import ExportBatch, run_export
    from app.domain.exports.templates import ExportTemplate

    template = ExportTemplate.get_by_id(_export_template_for(user))
    batch = ExportBatch.select().where(ExportBatch.template == template).first()
    if batch is None:
        if not template.parsed().allow_empty:
            template.definition = template.definition.replace('"allow_empty": false', '"allow_empty": true')
            template.save()
        batch = run_export(template, dt.date.today() - dt.timedelta(days=1))
    return batch.id


def build_cases(app: Flask, user: User | None) -> list[Case]:
    made = _matrix_payments()
    message = OutboxMessage.select().order_by(OutboxMessage.id).first() or OutboxMessage.create(
        to_address="someone@demo.example.gov.uk", subject="Matrix", body="A message for the matrix"
    )
    names = {
        "user_id": lambda _: User.get(User.email == DEMO_EMAILS["housing"]).id,
        "seq": lambda _: AuditEvent.select().order_by(AuditEvent.seq).first().seq,
        "message_id": lambda _: message.id,
        "key_id": lambda _: (ApiKey.select().first() or create_api_key(None, "Matrix", ["references:validate"])[0]).id,
        "receipt": _receipt_for,
        "account_id": _account_for,
        "config_id": lambda _: CheckDigitConfig.select().order_by(CheckDigitConfig.id).first().id,
        "format_id": lambda _: ReferenceFormat.select().order_by(ReferenceFormat.id).first().id,
        "fund_id": lambda _: ReferenceFormat.select().order_by(ReferenceFormat.id).first().fund_id,
        "reference": lambda u: _payment_for(u, made),
        "token": lambda _: made["CTAX"].return_token,
        "telephone_token": lambda _: made["telephone"].return_token,
        "n": lambda _: 0,
        "group_reference": _correction_for,
        "staff_reference": _staff_payment_for,
        "suspense_id": _suspense_item_for,
        "refund_reference": _refund_for,
        "export_template_id": _export_template_for,
        "export_batch_id": _export_batch_for,
        "batch_id": _import_batch_for,
        "template_id": _import_template_id,
        "rule_id": _import_rule_id,
    }
    cases = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint == "static":
                continue
            for values in _argument_values(rule, user, names):
                url = url_for(rule.endpoint, **values)
                cases.append(Case(rule.endpoint, url, frozenset(rule.methods - {"HEAD", "OPTIONS"})))
    return cases


def _goes_to_sign_in(response) -> bool:
    return response.status_code == 302 and response.location.split("?")[0].endswith("/sign-in")


def expectation(access, user: User | None, endpoint: str, demo_mode: bool) -> str:
    if access == PUBLIC:
        return "public"
    if isinstance(access, str) and access.startswith(API_KEY_PREFIX):
        return "api-key"  # no key sent: refused, whatever the session says
    if user is None:
        return "sign-in"
    if access == SIGNED_IN:
        return "allowed"
    assert isinstance(access, Permission), f"{endpoint} has an unknown access declaration {access!r}"
    if not user.can(access):
        return "forbidden"
    if endpoint in DEMO_ONLY and not demo_mode:
        return "not-found"
    return "allowed"


def check(response, expected: str, what: str) -> str | None:
    status = response.status_code
    ok = {
        "public": status < 500 and status != 403 and not _goes_to_sign_in(response),
        "sign-in": _goes_to_sign_in(response),
        "forbidden": status == 403,
        "api-key": status == 401 and response.is_json and "Bearer" in response.headers.get("WWW-Authenticate", ""),
        "not-found": status == 404,
        "allowed": status in (200, 302) and not _goes_to_sign_in(response),
    }[expected]
    if ok:
        return None
    where = f" → {response.location}" if response.status_code in (301, 302, 303) else ""
    return f"{what}: expected {expected}, got {response.status}{where}"


@pytest.mark.parametrize("identity", IDENTITIES)
def test_every_route_gives_each_user_what_its_access_declaration_says(app, signed_in, identity):
    if identity == "admin-outside-demo-mode":
        app.config["DEMO_MODE"] = False
    who = identity.removesuffix("-outside-demo-mode")
    user = None if who == "anonymous" else User.get(User.email == DEMO_EMAILS[who])
    client = app.test_client() if user is None else signed_in(who)
    demo_mode = app.config["DEMO_MODE"]

    problems = []
    covered = set()
    cases = build_cases(app, user)
    for case in cases:
        access = app.view_functions[case.endpoint].access
        expected = expectation(access, user, case.endpoint, demo_mode)
        if "GET" in case.methods:
            response = client.get(case.url)
            problem = check(response, expected, f"{identity} GET {case.url} ({case.endpoint})")
            response.close()  # a streamed download ends its generator (and its request context) here
        else:
            # POST-only: a fresh session so that, say, signing out does not end the one used above.
            poster = app.test_client() if user is None else signed_in(who)
            token = csrf_token(poster.get("/sign-in" if user is None else "/change-password").get_data())
            response = poster.post(case.url, data={"csrf_token": token})
            problem = check(response, expected, f"{identity} POST {case.url} ({case.endpoint})")
        covered.add(case.endpoint)
        if problem:
            problems.append(problem)

    assert not problems, "\n".join(problems)
    assert covered == set(app.view_functions) - {"static"}


def test_the_matrix_covers_every_endpoint(app):
    endpoints = {case.endpoint for case in build_cases(app, None)}
    missing = set(app.view_functions) - {"static"} - endpoints
    assert not missing, f"routes with no row in the authorisation matrix: {sorted(missing)}"
    # Every settings section and every <action> value is requested, not just one of each.
    urls = {case.url for case in build_cases(app, None)}
    for slug in SECTIONS:
        assert f"/admin/settings/{slug}" in urls
    assert any(url.endswith("/reset-password") for url in urls)
    assert any(url.endswith("/enable") for url in urls)


def test_every_view_declares_its_access(app):
    for endpoint, view in app.view_functions.items():
        if endpoint == "static":
            continue
        assert (
            view.access in (PUBLIC, SIGNED_IN)
            or isinstance(view.access, Permission)
            or view.access.startswith(API_KEY_PREFIX)
        ), endpoint


def test_staff_pages_all_need_sign_in(app):
    """Nothing under the staff URL prefixes is public by mistake."""
    staff_prefixes = ("/staff", "/admin", "/audit", "/transactions", "/payments", "/change-password", "/sign-out")
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(staff_prefixes):
            assert app.view_functions[rule.endpoint].access != PUBLIC, rule.rule
