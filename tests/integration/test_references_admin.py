"""Reference rules pages: check-digit configurations, a fund's formats and settings, trying references."""

from __future__ import annotations

import random

from app.domain.audit import AuditEvent
from app.domain.funds import Fund
from app.domain.references import CheckDigitConfig, ReferenceFormat, rule_settings
from app.domain.references.demo import generate_valid_reference, seed_demo_reference_rules
from tests.pages import error_summary, h1, inline_errors, main_text, post_form, summary_list, table_rows

BASE = "/admin/settings/references"


def last_event(action: str) -> AuditEvent | None:
    return AuditEvent.select().where(AuditEvent.action == action).order_by(AuditEvent.seq.desc()).first()


def config_data(**changes) -> dict:
    data = {
        "code": "MOD11X",
        "name": "Sundry invoices (modulus 11)",
        "algorithm": "weighted_sum",
        "modulus": "11",
        "weights": "7,6,5,4,3,2,0",
        "result_substitutions": "10=X",
        "description": "From the debtors system",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def ctax() -> Fund:
    seed_demo_reference_rules()
    return Fund.by_code("CTAX")


def test_admin_adds_a_check_digit_configuration_through_check_and_confirm(signed_in):
    admin = signed_in("admin")
    response = post_form(admin, f"{BASE}/check-digits/add", config_data())
    assert response.status_code == 302 and response.location.endswith("/check-digits/add/check")
    check = admin.get(f"{BASE}/check-digits/add/check").get_data(as_text=True)
    rows = summary_list(check)
    assert rows["Code"] == "MOD11X"
    assert rows["Modulus"] == "11"
    assert rows["Result substitutions"] == "10=X"
    assert CheckDigitConfig.by_code("MOD11X") is None  # nothing saved before confirming

    response = post_form(admin, f"{BASE}/check-digits/add/check")
    config = CheckDigitConfig.by_code("MOD11X")
    assert config is not None and config.modulus == 11 and config.weights == "7,6,5,4,3,2,0"
    assert response.location.endswith(f"/check-digits/{config.id}")
    page = admin.get(response.location).get_data(as_text=True)
    assert "Check-digit configuration MOD11X Sundry invoices (modulus 11) added" in main_text(page)
    event = last_event("check_digit.create")
    assert event is not None and str(event.object_id) == str(config.id)


def test_inconsistent_check_digit_parameters_are_refused_on_the_right_field(signed_in):
    admin = signed_in("admin")
    response = post_form(admin, f"{BASE}/check-digits/add", config_data(result_substitutions=""))
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    message = (
        "A result of 10 is two digits and cannot be a check character: add a substitution, "
        "like 10=A or 10=0 (or 10=never if no reference is issued with it)"
    )
    assert error_summary(page) == [message]
    assert inline_errors(page) == [message]
    assert h1(page) == "Add a check-digit configuration"

    page = post_form(admin, f"{BASE}/check-digits/add", config_data(weights="3,x,1")).get_data(as_text=True)
    assert error_summary(page) == ["Weights must be whole numbers separated by commas, like 3,7,1,3,7,1,3,7,0"]

    page = post_form(admin, f"{BASE}/check-digits/add", config_data(algorithm=None, code="")).get_data(as_text=True)
    assert error_summary(page) == ["Enter a code", "Choose a check-digit algorithm"]
    assert CheckDigitConfig.by_code("MOD11X") is None


def test_changing_a_configuration_that_would_break_a_format_is_refused(signed_in):
    ctax()
    admin = signed_in("admin")
    config = CheckDigitConfig.by_code("ACADEMY10")
    url = f"{BASE}/check-digits/{config.id}/change"
    page = admin.get(url).get_data(as_text=True)
    assert "10=0" in page
    data = {
        "name": config.name,
        "algorithm": "weighted_sum",
        "modulus": "10",
        "weights": "3,7,1",
        "subtract_from_modulus": "y",
        "result_substitutions": "10=0",
    }
    page = post_form(admin, url, data).get_data(as_text=True)
    assert error_summary(page) and "would break the format" in error_summary(page)[0]
    assert CheckDigitConfig.get_by_id(config.id).weights == "3,7,1,3,7,1,3,7,0"

    data["weights"] = "3,7,1,3,7,1,3,7,0"
    data["name"] = "Revenues modulus 10"
    response = post_form(admin, url, data)
    assert response.status_code == 302
    assert CheckDigitConfig.get_by_id(config.id).name == "Revenues modulus 10"
    assert last_event("check_digit.change") is not None


def test_a_configuration_in_use_cannot_be_disabled(signed_in):
    ctax()
    admin = signed_in("admin")
    config = CheckDigitConfig.by_code("ACADEMY10")
    page = post_form(admin, f"{BASE}/check-digits/{config.id}/disable").get_data(as_text=True)
    assert "choose another check for them first" in error_summary(page)[0]
    assert CheckDigitConfig.get_by_id(config.id).enabled

    unused = CheckDigitConfig.create(code="SPARE", name="Spare", algorithm="luhn")
    response = post_form(admin, f"{BASE}/check-digits/{unused.id}/disable")
    assert response.status_code == 302
    assert not CheckDigitConfig.get_by_id(unused.id).enabled


def test_fund_reference_rule_shows_formats_and_the_fund_links_to_it(signed_in):
    fund = ctax()
    admin = signed_in("admin")
    view = admin.get(f"/admin/settings/funds/{fund.id}").get_data(as_text=True)
    assert f"{BASE}/funds/{fund.id}" in view
    page = admin.get(f"{BASE}/funds/{fund.id}").get_data(as_text=True)
    assert h1(page) == "Reference rule for Council tax" or h1(page).startswith("Reference rule for")
    rows = summary_list(page)
    assert rows["Mask"] == "5#######@"
    assert rows["Length"] == "9 characters"
    assert rows["Characters"] == "Numbers only"
    assert rows["Check digit"].startswith("ACADEMY10")


def test_admin_adds_moves_and_removes_a_format(signed_in):
    fund = ctax()
    admin = signed_in("admin")
    url = f"{BASE}/funds/{fund.id}/formats/add"
    data = {
        "label": "Old council tax number",
        "example": "7012345678",
        "channels": ["staff"],
        "min_length": "10",
        "max_length": "10",
        "character_type": "numeric",
        "pattern": "70[0-9]{8}",
        "check_digit": "",
    }
    # An example that fails its own format is refused, with the reason, and nothing is saved.
    page = post_form(admin, url, {**data, "example": "7112345678"}).get_data(as_text=True)
    assert error_summary(page)[0].startswith("The example 7112345678 does not pass this format")
    page = post_form(admin, url, {**data, "pattern": "(a)\\1"}).get_data(as_text=True)
    assert "backreference" in error_summary(page)[0]
    assert not ReferenceFormat.select().where(ReferenceFormat.label == "Old council tax number").exists()

    response = post_form(admin, url, data)
    assert response.status_code == 302
    fmt = ReferenceFormat.get(ReferenceFormat.label == "Old council tax number")
    assert (fmt.public, fmt.staff, fmt.position) == (False, True, 2)
    assert str(last_event("reference_format.create").object_id) == str(fmt.id)

    page = admin.get(f"{BASE}/funds/{fund.id}").get_data(as_text=True)
    assert "Staff only" in main_text(page)
    post_form(admin, f"{BASE}/funds/{fund.id}/formats/{fmt.id}/move/up", form_url=f"{BASE}/funds/{fund.id}")
    assert ReferenceFormat.get_by_id(fmt.id).position == 1
    assert last_event("reference_format.move") is not None

    page = admin.get(f"{BASE}/funds/{fund.id}/formats/{fmt.id}/change").get_data(as_text=True)
    assert "7012345678" in page
    response = post_form(admin, f"{BASE}/funds/{fund.id}/formats/{fmt.id}/change", {**data, "label": "Older number"})
    assert response.status_code == 302
    assert ReferenceFormat.get_by_id(fmt.id).label == "Older number"

    response = post_form(admin, f"{BASE}/funds/{fund.id}/formats/{fmt.id}/remove")
    assert response.status_code == 302
    assert ReferenceFormat.get_or_none(ReferenceFormat.id == fmt.id) is None
    assert last_event("reference_format.remove") is not None


def test_admin_changes_rule_settings(signed_in):
    fund = ctax()
    admin = signed_in("admin")
    url = f"{BASE}/funds/{fund.id}/settings"
    page = post_form(admin, url, {"remove_characters": "A", "overpayment": "warn"}).get_data(as_text=True)
    assert error_summary(page) == ["Only symbols can be taken out of references, not letters or digits"]
    response = post_form(
        admin, url, {"remove_characters": "-/", "public_stop_message": "Call us", "overpayment": "refuse"}
    )
    assert response.status_code == 302
    settings = rule_settings(fund)
    assert (settings.remove_characters, settings.public_stop_message, settings.overpayment) == (
        "-/",
        "Call us",
        "refuse",
    )
    assert last_event("reference_rule.change") is not None


def test_try_a_reference_shows_each_check_passed_or_failed(signed_in):
    fund = ctax()
    auditor = signed_in("auditor")
    good = generate_valid_reference("CTAX", random.Random(3))
    page = auditor.get(f"{BASE}/funds/{fund.id}/try?reference={good[:3]} {good[3:]}&channel=staff").get_data(
        as_text=True
    )
    assert f"Valid: {good}" in main_text(page)
    rows = table_rows(page)
    assert [r[0] for r in rows][:2] == ["Fund", "Length"]
    assert all(r[1] == "Passed" for r in rows)
    assert ["Check digit", "Passed"] == rows[-1][:2] or any(r[0] == "Check digit" for r in rows)

    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    page = auditor.get(f"{BASE}/funds/{fund.id}/try?reference={bad}&amount=10").get_data(as_text=True)
    assert f"Not valid: {bad}" in main_text(page)
    rows = table_rows(page)
    assert rows[-1][0] == "Check digit" and rows[-1][1] == "Failed"
    assert rows[1][:2] == ["Amount", "Passed"]

    page = auditor.get(f"{BASE}/funds/{fund.id}/try?reference=").get_data(as_text=True)
    assert error_summary(page) == ["Enter a reference to try"]


def test_check_many_references_counts_failures(signed_in):
    fund = ctax()
    admin = signed_in("admin")
    rng = random.Random(5)
    good = [generate_valid_reference("CTAX", rng) for _ in range(3)]
    lines = [*good, "12345", "ABCDEFGHI"]
    url = f"{BASE}/funds/{fund.id}/try-many"
    page = post_form(admin, url, {"references": "\n".join(lines), "channel": "staff"}).get_data(as_text=True)
    assert "3 of 5 passed, 2 failed" in main_text(page)
    rows = table_rows(page)
    assert [r[2] for r in rows] == ["Passed", "Passed", "Passed", "Failed", "Failed"]
    assert rows[3][3]  # a reason for the failure

    page = post_form(admin, url, {"references": "\n".join(["1"] * 1001), "channel": "staff"}).get_data(as_text=True)
    assert error_summary(page) == ["Enter 1000 references or fewer (you entered 1001): check the rest separately"]


def test_auditors_can_look_but_not_change(signed_in):
    fund = ctax()
    auditor = signed_in("auditor")
    assert auditor.get(f"{BASE}/check-digits").status_code == 200
    assert auditor.get(f"{BASE}/funds/{fund.id}").status_code == 200
    assert auditor.get(f"{BASE}/check-digits/add").status_code == 403
    assert auditor.get(f"{BASE}/funds/{fund.id}/formats/add").status_code == 403
