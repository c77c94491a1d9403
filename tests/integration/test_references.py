"""Reference rules against a real database, migrated the way production is.

Every test runs on SQLite and on the PostgreSQL server the test session starts, each in a
fresh migrated database of its own (the `fresh_database` fixture in tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import io
import random
import time

import pytest

from app.domain.audit import AuditEvent, verify_chain
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.methods import MethodOfPayment
from app.domain.references import (
    AccountHolder,
    CheckDigitConfig,
    ReferenceFormat,
    ReferenceRule,
    add_format,
    change_check_digit_config,
    change_format,
    clear_rule_cache,
    compile_pattern,
    compiled_rule,
    create_check_digit_config,
    funds_matching,
    load_account_holders_csv,
    move_format,
    normalise_reference,
    override_stop,
    remove_format,
    save_rule_settings,
    try_references,
    validate_reference,
)
from app.domain.references import rules as rules_module
from app.domain.users import User

TODAY = dt.date(2026, 7, 1)


@pytest.fixture
def db(fresh_database):
    # A new migrated database per test, on SQLite and PostgreSQL (tests/conftest.py)
    return fresh_database


CTAX_CHECK = {
    "code": "MOD10",
    "name": "Modulus 10, weights 3-7-1",
    "algorithm": "weighted_sum",
    "modulus": 10,
    "weights": "3,7,1,3,7,1,3,7,0",
    "subtract_from_modulus": True,
    "result_substitutions": "10=0",
}
PCN_CHECK = {
    "code": "MOD11",
    "name": "Modulus 11, BJ",
    "algorithm": "weighted_sum",
    "modulus": 11,
    "weights": "9,8,7,6,5,4,3,2,1,0",
    "prefix_substitutions": "BJ=05",
    "result_substitutions": "10=A",
}


@pytest.fixture
def officer(db):
    return User.create(email="senior@example.gov.uk", name="Chloe Evans", password_hash="x")


@pytest.fixture
def ctax(db):
    return Fund.create(
        code="CTAX",
        name="Council tax",
        shown_to_citizens=True,
        minimum_pence=100,
        maximum_pence=1_000_000,
        reference_label="Council tax account number",
    )


@pytest.fixture
def mod10(db):
    return create_check_digit_config(None, CTAX_CHECK)


def ctax_format(mod10, **changes) -> dict:
    values = {
        "label": "Council tax account number",
        "min_length": 9,
        "max_length": 9,
        "character_type": "numeric",
        "mask": "########@",
        "check_digit": mod10.id,
        "example": "123456780",
    }
    values.update(changes)
    return values


def checks(result) -> list[tuple[str, bool]]:
    return [(c.check, c.passed) for c in result.checks]


# --- the chain ------------------------------------------------------------------------------


def test_worked_example_a_through_the_whole_chain(ctax, mod10):
    add_format(ctax, None, ctax_format(mod10))
    result = validate_reference(ctax, " 123 456 780 ", 12_500, channel="staff", on=TODAY)
    assert result.valid
    assert result.reference == "123456780"
    assert checks(result) == [
        ("fund", True),
        ("amount", True),
        ("length", True),
        ("character_type", True),
        ("mask", True),
        ("check_digit", True),
    ]
    assert result.format_label == "Council tax account number"
    assert result.message == "" and result.errors == {}
    assert validate_reference(ctax, "312345673", on=TODAY).valid


def test_staff_see_the_specific_reason_and_the_public_never_learn_the_rule(ctax, mod10):
    add_format(ctax, None, ctax_format(mod10))
    staff = validate_reference(ctax, "123456781", channel="staff", on=TODAY)
    assert not staff.valid
    assert checks(staff)[-1] == ("check_digit", False)
    assert "mistyped" in staff.message
    public = validate_reference(ctax, "123456781", channel="public", on=TODAY)
    assert checks(public) == [("fund", True), ("format", False)]
    assert public.message == "Enter your council tax account number, like 123456780"
    # Every kind of format failure looks the same to the public.
    for wrong in ("12345678", "12345678A", "1234567800"):
        assert validate_reference(ctax, wrong, on=TODAY).message == public.message
    assert validate_reference(ctax, "12345678", channel="staff", on=TODAY).message == (
        "The reference must be 9 characters long (it has 8)"
    )
    assert validate_reference(ctax, "1234A6780", channel="staff", on=TODAY).message == (
        "The reference must contain only digits (0 to 9): character 5 is “A”"
    )


def test_an_empty_or_overlong_reference_is_refused_in_words(ctax):
    assert validate_reference(ctax, "  ").message == "Enter your council tax account number"
    assert validate_reference(ctax, None, channel="staff").message == "Enter the council tax account number"
    too_long = validate_reference(ctax, "1" * 41)
    assert too_long.message == "Council tax account number must be 40 characters or fewer"
    huge = validate_reference(ctax, "1" * 1_000_000)
    assert not huge.valid and len(huge.reference) == 40


def test_normalising_trims_takes_out_spaces_and_upper_cases_ascii_only(ctax):
    assert validate_reference(ctax, " ab\t12 cd\n").reference == "AB12CD"
    assert normalise_reference("straße") == "STRAßE"  # not "STRASSE": ß stays and fails ASCII checks
    assert normalise_reference("ab-12/3", "-/") == "AB123"
    save_rule_settings(ctax, None, remove_characters="-")
    assert validate_reference(ctax, "12-34").reference == "1234"


def test_amount_limits_always_apply_even_with_no_format(ctax):
    assert validate_reference(ctax, "ANYTHING", 500).valid
    too_much = validate_reference(ctax, "ANYTHING", 1_000_001)
    assert not too_much.valid
    assert too_much.errors == {"amount": "The amount must be £10,000.00 or less"}
    assert validate_reference(ctax, "ANYTHING", 99).errors == {"amount": "The amount must be £1.00 or more"}
    assert validate_reference(ctax, "ANYTHING", 0).errors == {"amount": "Enter an amount greater than £0"}
    assert validate_reference(ctax, "ANYTHING", -5).errors == {"amount": "Enter an amount greater than £0"}
    for not_pence in (12.5, True, "100"):
        assert validate_reference(ctax, "ANYTHING", not_pence).errors["amount"].startswith("Enter an amount")


def test_amount_and_reference_failures_are_both_reported(ctax, mod10):
    add_format(ctax, None, ctax_format(mod10))
    result = validate_reference(ctax, "123", 5_000_000, on=TODAY)
    assert set(result.errors) == {"amount", "reference"}
    assert result.errors["amount"] == "The amount must be £10,000.00 or less"


def test_a_method_of_payments_limits_apply_too(ctax):
    cash = MethodOfPayment.create(code="CASH", name="Cash", channel="cash", minimum_pence=1, maximum_pence=50_000)
    result = validate_reference(ctax, "X1", 60_000, channel="staff", method=cash)
    assert result.errors == {"amount": "The amount must be £500.00 or less for cash"}


def test_the_fund_must_exist_be_enabled_and_be_payable_in_the_channel(ctax):
    hidden = Fund.create(code="TWASTE", name="Commercial waste", shown_to_citizens=False)
    assert validate_reference(hidden, "C1").message == "Choose a payment type"
    assert validate_reference(hidden, "C1", channel="staff").valid
    ctax.enabled = False
    ctax.save()
    assert validate_reference(ctax, "1", channel="staff").message == "Council tax is not taking payments"
    assert validate_reference("NOPE", "1", channel="staff").message == "There is no fund with the code NOPE"
    assert validate_reference("NOPE", "1").message == "Choose a payment type"
    assert validate_reference("twaste", "C1", channel="staff").valid
    with pytest.raises(ValueError):
        validate_reference(ctax, "1", channel="telephone")


def test_a_fund_with_no_formats_accepts_any_reference_but_says_so_to_staff(ctax):
    result = validate_reference(ctax, "WHATEVER", channel="staff")
    assert result.valid
    assert result.checks[-1].message == "Any reference is accepted: this fund has no reference format"


# --- chained formats --------------------------------------------------------------------------


@pytest.fixture
def chained(ctax, mod10):
    """Council tax moves from 70 + 8 digits to 77 + 7 digits (spec §6)."""
    new = add_format(
        ctax,
        None,
        {
            "label": "New council tax format",
            "effective_from": dt.date(2026, 4, 1),
            "min_length": 9,
            "max_length": 9,
            "character_type": "numeric",
            "pattern": "77[0-9]{7}",
            "example": "771234567",
        },
    )
    old = add_format(
        ctax,
        None,
        {
            "label": "Old council tax format",
            "effective_to": dt.date(2026, 9, 30),
            "min_length": 10,
            "max_length": 10,
            "character_type": "numeric",
            "pattern": "70[0-9]{8}",
            "example": "7012345678",
            "staff_warning": "Old reference: ask for the new one",
        },
    )
    return new, old


def test_chained_formats_follow_their_effective_dates(ctax, chained):
    new, old = chained
    before = dt.date(2026, 3, 31)
    during = dt.date(2026, 6, 1)
    after = dt.date(2026, 10, 1)
    assert not validate_reference(ctax, "771234567", on=before).valid
    assert validate_reference(ctax, "7012345678", on=before).format_id == old.id
    assert validate_reference(ctax, "771234567", on=during).format_id == new.id
    assert validate_reference(ctax, "7012345678", on=during).format_id == old.id
    assert validate_reference(ctax, "771234567", on=after).valid
    late = validate_reference(ctax, "7012345678", on=after, channel="staff")
    assert not late.valid
    assert late.format_label == "New council tax format"
    assert late.message == "The reference must be 9 characters long (it has 10)"


def test_the_old_format_warns_staff(ctax, chained):
    result = validate_reference(ctax, "7012345678", on=dt.date(2026, 6, 1), channel="staff")
    assert result.valid
    assert result.warnings == ["Old reference: ask for the new one"]
    assert validate_reference(ctax, "7012345678", on=dt.date(2026, 6, 1)).warnings == []


def test_an_old_format_can_be_staff_only(ctax, chained):
    _new, old = chained
    change_format(old, None, {"public": False})
    during = dt.date(2026, 6, 1)
    assert validate_reference(ctax, "7012345678", on=during, channel="staff").valid
    public = validate_reference(ctax, "7012345678", on=during)
    assert not public.valid
    # The public example comes from a format the public can use.
    assert public.message == "Enter your council tax account number, like 771234567"


def test_staff_see_why_the_closest_format_failed(ctax, chained):
    result = validate_reference(ctax, "7712345X9", on=dt.date(2026, 6, 1), channel="staff")
    assert result.format_label == "New council tax format"
    assert checks(result)[-2:] == [("length", True), ("character_type", False)]
    result = validate_reference(ctax, "7112345678", on=dt.date(2026, 6, 1), channel="staff")
    assert result.format_label == "Old council tax format"
    assert result.message == "The reference does not match the pattern for “Old council tax format”"


def test_no_format_in_effect_refuses_with_a_reason(ctax, chained):
    new, old = chained
    change_format(new, None, {"effective_from": dt.date(2027, 1, 1)})
    result = validate_reference(ctax, "771234567", on=dt.date(2026, 12, 1), channel="staff")
    assert (
        result.message
        == "No reference format for Council tax is in effect for payments taken by staff on 1 December 2026"
    )


def test_formats_are_tried_in_order_and_can_be_moved(ctax, mod10):
    broad = add_format(ctax, None, {"label": "Any 9 digits", "min_length": 9, "max_length": 9, "example": "123456789"})
    strict = add_format(ctax, None, ctax_format(mod10))
    assert validate_reference(ctax, "123456780").format_id == broad.id
    move_format(strict, None, "up")
    assert [f.label for f in ReferenceFormat.select().order_by(ReferenceFormat.position)] == [
        "Council tax account number",
        "Any 9 digits",
    ]
    assert validate_reference(ctax, "123456780").format_id == strict.id
    move_format(strict, None, "up")  # already first: nothing changes
    remove_format(strict, None)
    assert validate_reference(ctax, "123456780").format_id == broad.id


# --- cumulative checks: mask AND account, stops, overpayment ---------------------------------


def load(fund, text: str, actor=None):
    return load_account_holders_csv(fund, io.StringIO(text), actor, file_name="accounts.csv")


def test_mask_and_account_exists_both_apply(ctax, mod10):
    ctax.account_must_exist = True
    ctax.save()
    add_format(ctax, None, ctax_format(mod10))
    load(ctax, "reference,name\n123456780,A Resident\n999,Typo In Back Office\n")
    assert validate_reference(ctax, "123456780", on=TODAY).valid
    missing = validate_reference(ctax, "312345673", on=TODAY, channel="staff")
    assert checks(missing)[-1] == ("account_exists", False)
    assert missing.message == "There is no Council tax account with the reference 312345673"
    public = validate_reference(ctax, "312345673", on=TODAY)
    assert public.message == "We cannot find an account with that council tax account number. Check it and try again"
    # An account that exists but fails the mask is still refused: the format comes first.
    wrong = validate_reference(ctax, "999", on=TODAY, channel="staff")
    assert not wrong.valid and checks(wrong)[-1] == ("length", False)


def test_an_account_on_stop_refuses_payment_with_its_message(ctax, mod10, officer):
    add_format(ctax, None, ctax_format(mod10))
    load(
        ctax,
        "reference,name,balance,on_stop_message,stop_channels\n"
        "123456780,A Resident,100.00,Call us on 01234 567890 before paying,all\n"
        "312345673,B Resident,100.00,Referred to enforcement agents,public\n",
    )
    staff = validate_reference(ctax, "123456780", 1000, on=TODAY, channel="staff")
    assert not staff.valid
    assert staff.checks[-1] == rules_module.CheckOutcome("on_stop", False, "Call us on 01234 567890 before paying")
    assert staff.account.name == "A Resident"
    public = validate_reference(ctax, "123456780", 1000, on=TODAY)
    assert public.message == "Call us on 01234 567890 before paying"
    assert public.account is None  # citizens learn nothing else about the account
    assert public.as_dict()["account"] is None
    # A stop for the public only lets staff take the payment.
    staff_only = validate_reference(ctax, "312345673", on=TODAY, channel="staff")
    assert staff_only.valid
    assert staff_only.checks[-1].message == "On stop for online payments only: Referred to enforcement agents"
    assert validate_reference(ctax, "312345673", on=TODAY).message == "Referred to enforcement agents"
    # The council can show the public a generic message instead.
    save_rule_settings(ctax, None, public_stop_message="Please call the council tax team on 01234 567890")
    assert validate_reference(ctax, "312345673", on=TODAY).message == "Please call the council tax team on 01234 567890"
    assert validate_reference(ctax, "123456780", on=TODAY, channel="staff").message == (
        "Call us on 01234 567890 before paying"
    )


def test_a_senior_officer_can_override_a_stop_and_it_is_audited(ctax, officer):
    load(ctax, "reference,name,on_stop_message\nA1,A Resident,On stop: see notes\nB2,B Resident,\n")
    account = AccountHolder.get(AccountHolder.reference == "A1")
    with pytest.raises(DomainError, match="Enter why"):
        override_stop(account, officer, "  ")
    with pytest.raises(DomainError, match="signed-in senior finance officer"):
        override_stop(account, None, "Agreed with the team leader")
    with pytest.raises(DomainError, match="not on stop"):
        override_stop(AccountHolder.get(AccountHolder.reference == "B2"), officer, "x")
    override = override_stop(account, officer, "Customer settling in full, agreed with recovery", ip_address="10.0.0.1")
    event = AuditEvent.get(AuditEvent.seq == override.audit_seq)
    assert event.action == "account_holder.override_stop"
    assert event.actor_email == "senior@example.gov.uk"
    assert "Customer settling in full" in event.summary and event.ip_address == "10.0.0.1"
    result = validate_reference(ctax, "a1", channel="staff", stop_override=override)
    assert result.valid
    assert result.checks[-1].message == (
        "On stop, overridden by Chloe Evans: Customer settling in full, agreed with recovery"
    )
    # Not on the public channel, and not for another account.
    assert not validate_reference(ctax, "A1", stop_override=override).valid
    load(ctax, "reference,on_stop_message\nC3,Stopped too\n")
    assert not validate_reference(ctax, "C3", channel="staff", stop_override=override).valid
    assert verify_chain().ok


def test_overpayment_can_warn_or_refuse_staff_and_is_never_shown_to_the_public(ctax):
    load(ctax, "reference,balance\nA1,50.00\nA2,\n")
    assert validate_reference(ctax, "A1", 6000, channel="staff").warnings == []
    save_rule_settings(ctax, None, overpayment="warn")
    warned = validate_reference(ctax, "A1", 6000, channel="staff")
    assert warned.valid and warned.warnings == ["The amount is more than the £50.00 owed on this account"]
    save_rule_settings(ctax, None, overpayment="refuse")
    refused = validate_reference(ctax, "A1", 6000, channel="staff")
    assert refused.errors == {"amount": "The amount is more than the £50.00 owed on this account"}
    assert validate_reference(ctax, "A1", 5000, channel="staff").valid
    assert validate_reference(ctax, "A2", 6000, channel="staff").valid  # balance not known
    assert validate_reference(ctax, "A1", 6000).valid
    with pytest.raises(DomainError, match="Choose what to do"):
        save_rule_settings(ctax, None, overpayment="sometimes")


# --- regular expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(A)\1", "backreference"),
        (r"(?P<x>A)(?P=x)", "backreference"),
        (r"(?=A)A", "lookahead or lookbehind"),
        (r"(?!B)[A-Z]+", "lookahead or lookbehind"),
        (r"(?<=A)B", "lookahead or lookbehind"),
        (r"(?(1)A|B)", "conditional"),
        (r"(?>A+)", "atomic group"),
        (r"A++", "possessive"),
        (r"[A-", "not valid"),
        ("A" * 301, "300 characters or fewer"),
        (r"((((A{1,50}){1,50}){1,50}){1,50})", "too complicated|not valid"),
    ],
)
def test_regular_expressions_that_could_hang_or_re2_lacks_are_refused_on_save(ctax, pattern, message):
    with pytest.raises(DomainError, match=message) as caught:
        add_format(ctax, None, {"label": "Pattern", "pattern": pattern, "example": "A"})
    assert caught.value.field == "pattern"
    assert ReferenceFormat.select().count() == 0


def test_a_pathological_pattern_cannot_hang_validation(ctax):
    # (a+)+$ backtracks exponentially in Python's re on "aaaa…!"; RE2 answers in linear time.
    compiled = compile_pattern("(a+)+$")
    started = time.perf_counter()
    assert compiled.fullmatch("a" * 36 + "!") is None
    add_format(ctax, None, {"label": "Letters", "pattern": "(A+)+", "example": "AAA"})
    assert not validate_reference(ctax, "A" * 36 + "!", channel="staff").valid
    assert time.perf_counter() - started < 1.0  # exponential backtracking would take hours


def test_the_regular_expression_must_match_the_whole_reference(ctax):
    add_format(ctax, None, {"label": "Invoice", "pattern": "INV[0-9]{3}", "example": "INV123"})
    assert validate_reference(ctax, "inv123").valid
    assert not validate_reference(ctax, "XINV123").valid
    assert not validate_reference(ctax, "INV1234").valid


# --- formats and check-digit configurations refused on save ------------------------------------


def test_inconsistent_check_digit_configurations_are_refused(db):
    with pytest.raises(DomainError, match="Enter the weights") as caught:
        create_check_digit_config(None, {**CTAX_CHECK, "weights": ""})
    assert caught.value.field == "weights"
    with pytest.raises(DomainError, match="A result of 10 is two digits"):
        create_check_digit_config(None, {**PCN_CHECK, "result_substitutions": ""})
    with pytest.raises(DomainError, match="2 or more"):
        create_check_digit_config(None, {**CTAX_CHECK, "modulus": 1})
    with pytest.raises(DomainError, match="Enter a name"):
        create_check_digit_config(None, {**CTAX_CHECK, "name": ""})
    assert CheckDigitConfig.select().count() == 0
    config = create_check_digit_config(None, PCN_CHECK)
    assert config.weights == "9,8,7,6,5,4,3,2,1,0"
    assert config.prefix_substitutions == '{"BJ": "05"}'
    assert config.result_substitutions == '{"10": "A"}'
    assert AuditEvent.get(AuditEvent.action == "check_digit.create").summary == "Added MOD11 Modulus 11, BJ"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"label": ""}, "label", "Enter a name for the format"),
        ({"min_length": 10, "max_length": 9}, "min_length", "shortest length must be"),
        ({"max_length": 41}, "max_length", "between 1 and 40"),
        ({"min_length": "nine"}, "min_length", "whole number"),
        ({"character_type": "emoji"}, "character_type", "Choose the type"),
        ({"mask": "##########@", "min_length": None, "max_length": None}, "check_digit", "needs at least 10"),
        ({"mask": "########@", "min_length": 10, "max_length": 10}, "mask", "outside the length range"),
        ({"character_type": "alpha"}, "mask", "can never be letters only"),
        ({"mask": "####@####"}, "check_digit", "its weight must be 0"),
        ({"check_digit": None}, "check_digit", "The mask has a check character"),
        ({"example": ""}, "example", "Enter an example"),
        ({"example": "123456781"}, "example", "does not pass this format"),
        ({"known_good": "123456780\n312345674"}, "known_good", "312345674 is listed as a good reference but fails"),
        ({"known_bad": "312345673"}, "known_bad", "312345673 is listed as a bad reference but passes"),
        ({"effective_from": "2026-05-01", "effective_to": "2026-04-01"}, "effective_to", "same as or after"),
        ({"effective_from": "1 May"}, "effective_from", "real date"),
        ({"public": False, "staff": False}, "public", "Choose who can use the format"),
        ({"mask": "", "max_length": None, "min_length": None}, "max_length", "Set the longest length or a mask"),
    ],
)
def test_inconsistent_formats_are_refused_on_save(ctax, mod10, changes, field, message):
    with pytest.raises(DomainError, match=message) as caught:
        add_format(ctax, None, ctax_format(mod10, **changes))
    assert caught.value.field == field
    assert ReferenceFormat.select().count() == 0


def test_a_format_needs_at_least_one_check(ctax):
    with pytest.raises(DomainError, match="Add at least one check"):
        add_format(ctax, None, {"label": "Nothing", "example": "A"})


def test_luhn_and_library_cards_need_the_check_character_last(ctax):
    luhn = create_check_digit_config(None, {"code": "LUHN", "name": "Luhn", "algorithm": "luhn"})
    with pytest.raises(DomainError, match="always the last one"):
        add_format(ctax, None, {"label": "L", "mask": "@###", "check_digit": luhn.id, "example": "0000"})
    fmt = add_format(ctax, None, {"label": "L", "mask": "INV######@", "check_digit": luhn.id, "example": "INV1234566"})
    assert fmt.id
    assert validate_reference(ctax, "INV1234566").valid
    assert not validate_reference(ctax, "INV1234567").valid


def test_a_switched_off_check_digit_configuration_cannot_be_chosen(ctax, mod10):
    change_check_digit_config(mod10, None, {"enabled": False})
    with pytest.raises(DomainError, match="switched off"):
        add_format(ctax, None, ctax_format(mod10))


def test_changing_a_check_digit_configuration_is_checked_against_the_formats_using_it(ctax, mod10):
    add_format(ctax, None, ctax_format(mod10))
    with pytest.raises(DomainError, match="would break the format “Council tax account number” of Council tax"):
        change_check_digit_config(mod10, None, {"weights": "3,7,1"})
    with pytest.raises(DomainError, match="used by 1 reference format"):
        change_check_digit_config(mod10, None, {"enabled": False})
    assert validate_reference(ctax, "123456780").valid
    version = ReferenceRule.get(ReferenceRule.fund == ctax.id).version
    # A change every format can live with is saved, and the funds using it recompile.
    change_check_digit_config(mod10, None, {"name": "Academy modulus 10"})
    assert ReferenceRule.get(ReferenceRule.fund == ctax.id).version == version + 1
    assert CheckDigitConfig.get_by_id(mod10.id).name == "Academy modulus 10"


def test_every_change_is_audited(ctax, mod10):
    fmt = add_format(ctax, None, ctax_format(mod10))
    change_format(fmt, None, {"staff_warning": "Check the bill"})
    change_format(fmt, None, {"staff_warning": "Check the bill"})  # no change, no event
    move_format(fmt, None, "down")
    save_rule_settings(ctax, None, overpayment="warn")
    remove_format(fmt, None)
    actions = [e.action for e in AuditEvent.select().order_by(AuditEvent.seq)]
    assert actions == [
        "check_digit.create",
        "reference_format.create",
        "reference_format.change",
        "reference_rule.change",
        "reference_format.remove",
    ]
    change = AuditEvent.get(AuditEvent.action == "reference_format.change")
    assert change.before_data == {"staff_warning": ""}
    assert change.after_data == {"staff_warning": "Check the bill"}
    assert verify_chain().ok


# --- compiled once, cached, recompiled on change ----------------------------------------------


class QueryCounter:
    def __init__(self, database, monkeypatch):
        self.count = 0
        original = database.execute_sql

        def counting(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(database, "execute_sql", counting)


def test_validation_makes_no_query_once_the_rule_is_compiled(db, ctax, mod10, monkeypatch):
    add_format(ctax, None, ctax_format(mod10))
    validate_reference(ctax, "123456780")
    counter = QueryCounter(db, monkeypatch)
    for reference in ("123456780", "123456781", "12", "", "312345673"):
        validate_reference(ctax, reference, 1000, channel="staff", on=TODAY)
        validate_reference(ctax, reference, 1000, on=TODAY)
    assert counter.count == 0


def test_the_account_lookup_is_the_only_query_when_accounts_matter(db, ctax, mod10, monkeypatch):
    add_format(ctax, None, ctax_format(mod10))
    load(ctax, "reference\n123456780\n")
    validate_reference(ctax, "123456780")
    counter = QueryCounter(db, monkeypatch)
    validate_reference(ctax, "123456780", channel="staff")
    assert counter.count == 1
    validate_reference(ctax, "123456781", channel="staff")  # fails the check digit: no lookup
    assert counter.count == 1


def test_a_change_in_this_process_takes_effect_at_once(ctax, mod10):
    fmt = add_format(ctax, None, ctax_format(mod10))
    assert not validate_reference(ctax, "ABC").valid
    change_format(fmt, None, {"mask": "", "check_digit": None, "character_type": "alpha", "min_length": 3,
                              "max_length": 3, "example": "ABC"})  # fmt: skip
    assert validate_reference(ctax, "ABC").valid


def test_a_change_by_another_process_is_seen_within_the_cache_time(ctax, mod10, monkeypatch):
    fmt = add_format(ctax, None, ctax_format(mod10))
    assert validate_reference(ctax, "123456780").valid
    # Another process changes the stored rule (bypassing this process's cache).
    ReferenceFormat.update(mask="9#######@", example="912345674").where(ReferenceFormat.id == fmt.id).execute()
    ReferenceRule.update(version=ReferenceRule.version + 1).where(ReferenceRule.fund == ctax.id).execute()
    assert validate_reference(ctax, "123456780").valid  # still cached
    monkeypatch.setattr(rules_module, "CACHE_SECONDS", 0.0)
    assert not validate_reference(ctax, "123456780").valid


def test_a_stored_format_that_no_longer_compiles_refuses_everything(ctax, mod10):
    fmt = add_format(ctax, None, ctax_format(mod10))
    ReferenceFormat.update(pattern=r"(A)\1").where(ReferenceFormat.id == fmt.id).execute()
    clear_rule_cache()
    result = validate_reference(ctax, "123456780", channel="staff")
    assert not result.valid
    assert "an administrator needs to correct it" in result.message


# --- the tester, import routing, the API shape -------------------------------------------------


def test_try_many_references_at_once(ctax, mod10):
    add_format(ctax, None, ctax_format(mod10))
    results = try_references(ctax, ["123456780", "123456781", "312345673"])
    assert [r.valid for r in results] == [True, False, True]
    assert results[1].checks[-1].check == "check_digit"


def test_a_reference_matching_two_funds_is_ambiguous(ctax, mod10):
    nndr = Fund.create(code="NNDR", name="Business rates", shown_to_citizens=True)
    sundry = Fund.create(code="SUNDRY", name="Sundry")  # no formats: takes no part in routing
    add_format(ctax, None, ctax_format(mod10))
    add_format(nndr, None, {"label": "Nine digits", "min_length": 9, "max_length": 9, "example": "123456789"})
    assert [f.code for f in funds_matching("123456780", [ctax, nndr, sundry])] == ["CTAX", "NNDR"]
    assert [f.code for f in funds_matching("123456789", [ctax, nndr, sundry])] == ["NNDR"]
    assert funds_matching("X", [ctax, nndr, sundry]) == []


def test_the_api_shape(ctax, mod10):
    add_format(ctax, None, ctax_format(mod10))
    load(ctax, "reference,name,address,balance\n123456780,A Resident,1 High Street,12.34\n")
    data = validate_reference(ctax, "123456780", 1000, channel="staff").as_dict()
    assert data == {
        "valid": True,
        "reference": "123456780",
        "checks": [
            {"check": "fund", "passed": True, "message": "The fund is taking payments"},
            {"check": "amount", "passed": True, "message": "The amount is within the limits"},
            {"check": "length", "passed": True, "message": "Has 9 characters"},
            {"check": "character_type", "passed": True, "message": "Contains only digits (0 to 9)"},
            {"check": "mask", "passed": True, "message": "Fits the mask: 8 digits, then a check character"},
            {"check": "check_digit", "passed": True, "message": "The check character is right"},
            {"check": "account_exists", "passed": True, "message": "The account exists"},
            {"check": "on_stop", "passed": True, "message": "The account is not on stop"},
        ],
        "account": {
            "reference": "123456780",
            "name": "A Resident",
            "address": "1 High Street",
            "balance_pence": 1234,
            "on_stop": False,
            "on_stop_message": "",
        },
    }


# --- the demo council -----------------------------------------------------------------------------


def test_the_demo_funds_have_working_rules(db):
    from app.demo import seed_configuration
    from app.domain.references.demo import FORMATS, generate_valid_reference, seed_demo_reference_rules

    seed_configuration()
    seed_demo_reference_rules()
    events = AuditEvent.select().count()
    seed_demo_reference_rules()  # idempotent
    assert AuditEvent.select().count() == events

    rng = random.Random(7)
    for code in ("CTAX", "NNDR", "HRENT", "PCN", "LIB", "SUNDRY", "TWASTE", "SUSP"):
        fund = Fund.by_code(code)
        channel = "public" if fund.shown_to_citizens else "staff"
        for _ in range(25):
            reference = generate_valid_reference(code, rng, channel=channel)
            result = validate_reference(fund, reference, fund.minimum_pence, channel=channel)
            assert result.valid, (code, reference, result.message)
            if code in FORMATS and code != "TWASTE":
                # Change the last character: caught by every demo check digit.
                last = reference[-1]
                wrong = reference[:-1] + ("1" if last != "1" else "2")
                assert not validate_reference(fund, wrong, channel=channel).valid, (code, wrong)

    for fund_code, formats in FORMATS.items():
        fund = Fund.by_code(fund_code)
        for values in formats:
            assert validate_reference(fund, values["example"], channel="staff").valid
    # Chained business rates: the old format is for staff only, with a warning.
    nndr = Fund.by_code("NNDR")
    old = validate_reference(nndr, "5512345678", channel="staff", on=dt.date(2026, 6, 1))
    assert old.valid and old.warnings
    assert not validate_reference(nndr, "5512345678", on=dt.date(2026, 6, 1)).valid
    assert not validate_reference(nndr, "5512345678", channel="staff", on=dt.date(2027, 4, 1)).valid
    # Commercial waste accounts must exist; one is on stop.
    twaste = Fund.by_code("TWASTE")
    assert twaste.account_must_exist
    assert not validate_reference(twaste, "C99999", channel="staff").valid
    assert validate_reference(twaste, "C10005", channel="staff").message.startswith("This account is closed")
    assert Fund.by_code("CTAX").reference_hint == "It is 9 digits, starts with 5 and is at the top of your bill"
    assert compiled_rule(Fund.by_code("CTAX")).has_accounts is False
