"""Import templates and import rules pages (settings), on SQLite and PostgreSQL: built-ins, CSV
templates with GOV.UK validation, rules in order with POST-only moves, "try" pages, audit rows,
and importing account holders through the account-holders template."""

from __future__ import annotations

import datetime as dt
import io
import json

from app.domain.audit import AuditEvent
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.imports.formats import ImportRow, import_account_holders, read_account_holders
from app.domain.imports.rules import ImportRule, create_rule, rules_for
from app.domain.imports.templates import ImportTemplate, ensure_builtin_templates
from app.domain.methods import MethodOfPayment
from app.domain.references import AccountHolder
from tests.pages import error_summary, h1, inline_errors, main_text, post_form, summary_list, table_rows

BASE = "/admin/settings/imports"


def last_event(action: str) -> AuditEvent | None:
    return AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq.desc()).first()


def csv_template_data(**changes) -> dict:
    data = {
        "name": "Bank of Demo statement",
        "description": "Daily credits",
        "delimiter": "semicolon",
        "header_rows": "1",
        "encoding": "cp1252",
        "date_format": "dd/mm/yyyy",
        "amount_unit": "pounds",
        "column_reference": "Account",
        "column_amount": "3",
        "column_date": "Paid on",
        "column_sign": "D/C",
        "column_payer_name": "Payer",
        "negative_values": "D",
        "extra_columns": "outlet = 6",
        "default_fund": str(Fund.by_code("CTAX").id),
        "default_method": str(MethodOfPayment.by_code("BACS").id),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def rule_data(**changes) -> dict:
    data = {
        "name": "Old council tax references",
        "template": "",
        "join": "all",
        "field_1": "reference",
        "op_1": "starts_with",
        "value_1": "70, 77",
        "action": "suspense",
        "action_value": "Old council tax format",
        "submit": "Save rule",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_four_built_in_templates_exist_once_and_are_listed(signed_in):
    assert ensure_builtin_templates() == []  # the migration and the demo seed made them
    kinds = sorted(t.kind for t in ImportTemplate.select().where(ImportTemplate.is_builtin == True))  # noqa: E712
    assert kinds == ["account_holders", "allpay", "dwp", "localgov_csv"]
    allpay = ImportTemplate.builtin("allpay")
    assert allpay.default_method.code == "ALLPAY"  # demo default

    admin = signed_in("admin")
    settings = admin.get("/admin/settings").get_data(as_text=True)
    assert f"{BASE}/templates" in settings and f"{BASE}/rules" in settings
    page = admin.get(f"{BASE}/templates").get_data(as_text=True)
    names = [row[0] for row in table_rows(page)]
    assert {"allpay daily file", "DWP council tax deductions", "LocalGov IMS transactions CSV"} <= set(names)

    view = admin.get(f"{BASE}/templates/{allpay.id}").get_data(as_text=True)
    assert summary_list(view)["Default method of payment"] == "allpay, Post Office or PayPoint (ALLPAY)"
    assert "Change defaults" in view


def test_a_built_in_template_only_changes_its_defaults_and_is_audited(signed_in):
    admin = signed_in("admin")
    dwp = ImportTemplate.builtin("dwp")
    url = f"{BASE}/templates/{dwp.id}/change"
    page = admin.get(url).get_data(as_text=True)
    assert h1(page) == "Change the defaults of DWP council tax deductions"
    assert "Column for the" not in page
    response = post_form(admin, url, {"default_fund": str(Fund.by_code("NNDR").id), "default_method": ""})
    assert response.status_code == 302
    dwp = ImportTemplate.get_by_id(dwp.id)
    assert dwp.default_fund.code == "NNDR" and dwp.default_method_id is None
    assert json.loads(dwp.options)["columns"]["reference"] == "6"  # layout untouched
    event = last_event("import_template.change")
    assert event is not None and event.object_id == str(dwp.id)

    page = post_form(admin, url, {"default_fund": "999999", "default_method": ""}).get_data(as_text=True)
    assert error_summary(page) == ["Choose a fund from the list"]


def test_admin_adds_a_csv_template_and_tries_it(signed_in):
    admin = signed_in("admin")
    response = post_form(admin, f"{BASE}/templates/add", csv_template_data())
    assert response.status_code == 302, error_summary(response.get_data(as_text=True))
    template = ImportTemplate.get(ImportTemplate.name == "Bank of Demo statement")
    assert template.kind == "csv" and not template.is_builtin
    options = template.settings
    assert options["columns"] == {
        "reference": "Account",
        "amount": "3",
        "date": "Paid on",
        "sign": "D/C",
        "payer_name": "Payer",
        "outlet": "6",
    }
    assert options["delimiter"] == "semicolon" and options["encoding"] == "cp1252"
    event = last_event("import_template.create")
    assert event.object_id == str(template.id) and event.after_data["name"] == "Bank of Demo statement"

    page = admin.get(response.location).get_data(as_text=True)
    assert "Import template Bank of Demo statement added" in main_text(page)
    rows = summary_list(page)
    assert rows["Account reference"] == "the column headed “Account”"
    assert rows["Amount"] == "column 3"
    assert rows["Field “outlet”"] == "column 6"

    sample = "Account;Paid on;Amount;D/C;Payer;Outlet\n512345677;02/03/2026;1,234.50;C;Ann;PO1\n;02/03/2026;1;C;X;Y\n"
    page = post_form(admin, f"{BASE}/templates/{template.id}/try", {"sample": sample}).get_data(as_text=True)
    text = main_text(page)
    assert "2 lines read" in text
    assert "reference: 512345677" in text and "amount: £1,234.50" in text and "outlet: PO1" in text
    assert "The line has no council tax account number" in text  # what an import would do: suspense
    assert ImportTemplate.select().count() >= 5


def test_csv_template_errors_are_shown_gov_uk_style_on_their_fields(signed_in):
    admin = signed_in("admin")
    url = f"{BASE}/templates/add"
    page = post_form(admin, url, csv_template_data(name="", column_reference="")).get_data(as_text=True)
    assert error_summary(page) == ["Enter a name for the template"]
    assert inline_errors(page) == ["Enter a name for the template"]
    assert h1(page) == "Add a CSV template"

    cases = {
        "column_reference": ("", "Enter the column that holds the account reference: a number, like 3, or its heading"),
        "column_amount": ("0", "The column for the amount must be a number from 1 to 500"),
        "header_rows": ("x", "The number of header rows must be a whole number from 0 to 20"),
        "delimiter": ("?", "Choose what separates the values"),
        "extra_columns": (
            "Outlet code 6",
            "Line 1 of other columns must be a field name, an equals sign and a column, like channel = 5",
        ),
        "date_format": ("mm/dd", "Choose how dates are written"),
    }
    for field, (value, message) in cases.items():
        page = post_form(admin, url, csv_template_data(**{field: value})).get_data(as_text=True)
        assert error_summary(page) == [message], field
    page = post_form(admin, url, csv_template_data(header_rows="0")).get_data(as_text=True)
    assert error_summary(page) == [
        "The column for the account reference must be a number, because files of this template have no header row"
    ]
    post_form(admin, url, csv_template_data())
    page = post_form(admin, url, csv_template_data(name="bank of demo STATEMENT")).get_data(as_text=True)
    assert error_summary(page) == ["There is already a template called bank of demo STATEMENT"]
    assert ImportTemplate.select().where(ImportTemplate.kind == "csv").count() == 1


def test_changing_and_turning_off_a_csv_template(signed_in):
    admin = signed_in("admin")
    post_form(admin, f"{BASE}/templates/add", csv_template_data())
    template = ImportTemplate.get(ImportTemplate.name == "Bank of Demo statement")
    url = f"{BASE}/templates/{template.id}/change"
    page = admin.get(url).get_data(as_text=True)
    assert 'value="Account"' in page and "outlet = 6" in page
    response = post_form(admin, url, csv_template_data(column_amount="Amount", name="Bank of Demo CSV"))
    assert response.status_code == 302
    template = ImportTemplate.get_by_id(template.id)
    assert template.name == "Bank of Demo CSV" and template.settings["columns"]["amount"] == "Amount"
    assert last_event("import_template.change").before_data["name"] == "Bank of Demo statement"

    response = post_form(admin, f"{BASE}/templates/{template.id}/disable")
    assert response.status_code == 302 and not ImportTemplate.get_by_id(template.id).is_active
    assert last_event("import_template.disable") is not None


def test_admin_adds_rules_moves_them_with_post_only_and_turns_one_off(signed_in):
    admin = signed_in("admin")
    response = post_form(admin, f"{BASE}/rules/add", rule_data())
    assert response.status_code == 302, error_summary(response.get_data(as_text=True))
    allpay = ImportTemplate.builtin("allpay")
    second = rule_data(
        name="Returned cheques",
        template=str(allpay.id),
        field_1="channel",
        op_1="equals",
        value_1="Q",
        action="set_method",
        action_value="chq",
        stops="y",
    )
    assert post_form(admin, f"{BASE}/rules/add", second).status_code == 302
    first, other = list(ImportRule.select().order_by(ImportRule.position))
    assert first.name == "Old council tax references" and other.action_value == "CHQ" and other.stops
    assert json.loads(first.conditions) == {
        "join": "all",
        "conditions": [{"field": "reference", "op": "starts_with", "value": "70, 77"}],
    }
    assert last_event("import_rule.create").object_id == str(other.id)

    page = admin.get(f"{BASE}/rules").get_data(as_text=True)
    assert "When reference starts with “70, 77”" in main_text(page) or "reference starts with “70, 77”" in page
    # Moving changes state, so it is POST only
    assert admin.get(f"{BASE}/rules/{other.id}/move/up").status_code == 405
    response = post_form(admin, f"{BASE}/rules/{other.id}/move/up", form_url=f"{BASE}/rules")
    assert response.status_code == 302
    order = [r.name for r in ImportRule.select().order_by(ImportRule.position)]
    assert order == ["Returned cheques", "Old council tax references"]
    assert last_event("import_rule.move").summary == "Moved the import rule Returned cheques up"

    response = post_form(admin, f"{BASE}/rules/{first.id}/disable")
    assert response.status_code == 302 and not ImportRule.get_by_id(first.id).is_active
    assert [r.name for r in rules_for(allpay).rules] == ["Returned cheques"]
    assert last_event("import_rule.disable") is not None


def test_rule_errors_name_their_fields(signed_in):
    admin = signed_in("admin")
    url = f"{BASE}/rules/add"
    cases = [
        (rule_data(name=""), "Enter a name for the rule"),
        (rule_data(field_1="", value_1="", op_1=""), "Enter at least one condition"),
        (rule_data(op_1=""), "Choose how condition 1 tests the field"),
        (rule_data(op_1="matches", value_1="(a+)+"), "nested quantifier"),
        (rule_data(op_1="matches", value_1="x" * 201), "The regular expression must be 200 characters or fewer"),
        (
            rule_data(op_1="amount_between", field_1="amount", value_1="5 to 1"),
            "The first amount must be the lower one",
        ),
        (rule_data(action="set_fund", action_value="NOPE"), "There is no fund with the code NOPE"),
        (rule_data(action="replace_reference", action_value="^BERN(.*)$", replacement="\\2"), "group 2"),
        (rule_data(action=""), "Choose what the rule does"),
    ]
    for data, words in cases:
        page = post_form(admin, url, data).get_data(as_text=True)
        summary = error_summary(page)
        assert len(summary) == 1 and words in summary[0], (data, summary)
        assert inline_errors(page) == summary
    assert ImportRule.select().count() == 0


def test_try_this_rule_shows_each_line_before_saving(signed_in):
    admin = signed_in("admin")
    allpay = ImportTemplate.builtin("allpay")
    lines = "\n".join(
        [
            " 3356107000669297          60.00T30/06/2022",
            " 335611512345677          125.50P30/06/2022",
            " 335612BERN123456780       40.00Z01/07/2022",
            " 335613512345677            0.00P01/07/2022",
        ]
    )
    data = rule_data(try_template=str(allpay.id), sample=lines, submit=None, try_rule="Try this rule")
    response = post_form(admin, f"{BASE}/rules/add", data)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert ImportRule.select().count() == 0  # nothing saved
    rows = table_rows(page)
    assert [row[0] for row in rows] == ["1", "2", "3", "4"]
    assert rows[0][2] == "Yes" and rows[0][3].startswith("Suspense")
    assert "Rule “Old council tax references”: Send to suspense: Old council tax format" in rows[0][3]
    assert rows[1][2] == "No" and rows[1][3].startswith("Post")
    assert "scheme: BERN" in rows[2][1]
    assert rows[3][1] == "Not read: The amount is zero"

    strip = rule_data(
        name="BERN prefix",
        field_1="scheme",
        op_1="equals",
        value_1="BERN",
        action="replace_reference",
        action_value="^(.*)$",
        replacement="CT\\1",
        try_template=str(allpay.id),
        sample=lines,
        submit=None,
        try_rule="Try this rule",
    )
    page = post_form(admin, f"{BASE}/rules/add", strip).get_data(as_text=True)
    assert "Reference 123456780 becomes CT123456780" in main_text(page)

    page = post_form(admin, f"{BASE}/rules/add", {**data, "sample": ""}).get_data(as_text=True)
    assert error_summary(page) == ["Paste some lines from a file to try the rule on"]


def test_changing_a_rule_keeps_its_place_and_is_audited(signed_in):
    admin = signed_in("admin")
    rule = create_rule(None, rule_data())
    url = f"{BASE}/rules/{rule.id}/change"
    page = admin.get(url).get_data(as_text=True)
    assert 'value="70, 77"' in page
    response = post_form(admin, url, rule_data(value_1="70", action="skip", action_value=""))
    assert response.status_code == 302
    rule = ImportRule.get_by_id(rule.id)
    assert rule.action == "skip" and rule.group["conditions"][0]["value"] == "70"
    event = last_event("import_rule.change")
    assert event.before_data["action"] == "suspense" and event.after_data["action"] == "skip"


def test_field_names_page_and_viewers_cannot_change(signed_in):
    auditor = signed_in("auditor")
    page = auditor.get(f"{BASE}/fields").get_data(as_text=True)
    assert h1(page) == "Field names for import rules" and "channel" in page
    assert auditor.get(f"{BASE}/rules").status_code == 200
    assert auditor.get(f"{BASE}/rules/add").status_code == 403
    assert auditor.get(f"{BASE}/templates/add").status_code == 403
    assert "Add a CSV template" not in auditor.get(f"{BASE}/templates").get_data(as_text=True)
    assert signed_in("finance").get(f"{BASE}/templates").status_code == 403


def test_rule_set_applies_in_order_and_stops(app):
    create_rule(
        None,
        rule_data(
            name="Strip BERN", field_1="scheme", op_1="equals", value_1="BERN", action="strip_prefix", action_value="XX"
        ),
    )
    create_rule(
        None,
        rule_data(
            name="Fund by prefix",
            field_1="reference",
            op_1="starts_with",
            value_1="5",
            action="set_fund",
            action_value="ctax",
            stops="y",
        ),
    )
    create_rule(
        None,
        rule_data(
            name="Never reached", field_1="reference", op_1="starts_with", value_1="5", action="skip", action_value=""
        ),
    )
    ruleset = rules_for(ImportTemplate.builtin("allpay"))
    row = ImportRow(1, "512345677", 100, dt.date(2026, 3, 1), fields={"scheme": ""})
    outcome = ruleset.apply(row)
    assert outcome.decision == "post" and outcome.row.fund_code == "CTAX" and row.fund_code == ""
    assert outcome.rules_applied == ("Fund by prefix",)


def test_account_holders_import_upserts_and_is_audited(app):
    template = ImportTemplate.builtin("account_holders")
    data = (
        b"fund,reference,name,balance\n"
        b"TWASTE,C10009,New Cafe Ltd,10.00\n"
        b"TWASTE,C10001,The Corner Cafe (renamed),240.00\n"
        b"NOPE,C1,Unknown fund,\n"
        b"TWASTE,,No reference,\n"
    )
    report = import_account_holders(read_account_holders(template, io.BytesIO(data)), None, file_name="a.csv")
    assert (report.inserted, report.updated, report.error_count) == (1, 1, 2)
    assert [str(e) for e in report.errors] == [
        "Line 4: There is no fund with the code NOPE",
        "Line 5: The reference is missing",
    ]
    twaste = Fund.by_code("TWASTE")
    added = AccountHolder.get((AccountHolder.fund == twaste.id) & (AccountHolder.reference == "C10009"))
    assert added.name == "New Cafe Ltd" and added.balance_pence == 1000
    event = last_event("account_holders.import")
    assert event is not None and event.after_data["inserted"] == 1


def test_rules_refuse_bad_values_in_the_domain_too(app):
    import pytest

    with pytest.raises(DomainError) as caught:
        create_rule(None, rule_data(action="set_method", action_value="NOPE"))
    assert caught.value.field == "action_value"
