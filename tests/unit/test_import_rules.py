"""Import rules without a database: conditions, actions, order, stopping, safe regular expressions."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from app.domain.errors import DomainError
from app.domain.imports.formats import ImportRow
from app.domain.imports.rules import (
    RuleSet,
    check_replacement,
    compile_rule,
    compile_rule_pattern,
    parse_amount_range,
)


def rule(name, conditions, action, value="", *, join="all", stops=False, replacement=""):
    return {
        "name": name,
        "conditions": json.dumps({"join": join, "conditions": conditions}),
        "action": action,
        "action_value": value,
        "replacement": replacement,
        "stops": stops,
    }


def row(reference="512345677", pence=1000, **fields) -> ImportRow:
    return ImportRow(7, reference, pence, dt.date(2026, 3, 1), "", "ALLPAY", fields=dict(fields))


def ruleset(*rules) -> RuleSet:
    return RuleSet([compile_rule(r) for r in rules])


def test_no_rule_matches_posts_the_row_unchanged():
    outcome = ruleset(rule("X", [{"field": "reference", "op": "equals", "value": "1"}], "skip")).apply(row())
    assert outcome.decision == "post" and outcome.reason == "" and outcome.rules_applied == ()


def test_each_operator():
    cases = [
        ({"field": "reference", "op": "equals", "value": "512345677"}, True),
        ({"field": "reference", "op": "starts_with", "value": "9, 51"}, True),
        ({"field": "reference", "op": "contains", "value": "234"}, True),
        ({"field": "channel", "op": "in_list", "value": "p, t"}, True),  # capitals do not matter
        ({"field": "channel", "op": "equals", "value": "q"}, False),
        ({"field": "reference", "op": "matches", "value": "5[0-9]{8}"}, True),
        ({"field": "reference", "op": "matches", "value": "5[0-9]{7}"}, False),  # the whole value
        ({"field": "amount", "op": "amount_between", "value": "5.00 to 10.00"}, True),
        ({"field": "amount", "op": "amount_between", "value": "to 9.99"}, False),
        ({"field": "outlet", "op": "equals", "value": ""}, False),
    ]
    for condition, expected in cases:
        if not condition["value"]:
            continue
        outcome = ruleset(rule("R", [condition], "skip")).apply(row(channel="T"))
        assert (outcome.decision == "skip") is expected, condition


def test_all_and_any():
    conditions = [
        {"field": "reference", "op": "starts_with", "value": "5"},
        {"field": "channel", "op": "equals", "value": "Q"},
    ]
    assert ruleset(rule("All", conditions, "skip")).apply(row(channel="P")).decision == "post"
    assert ruleset(rule("Any", conditions, "skip", join="any")).apply(row(channel="P")).decision == "skip"
    three = [*conditions, {"field": "amount", "op": "amount_between", "value": "1 to 100"}]
    assert ruleset(rule("Any3", three, "skip", join="any")).apply(row("9", channel="X")).decision == "skip"


def test_actions_change_a_copy_in_order_and_suspense_ends_it():
    rules = ruleset(
        rule("Strip", [{"field": "scheme", "op": "equals", "value": "BERN"}], "strip_prefix", "CT"),
        rule(
            "Rewrite",
            [{"field": "reference", "op": "starts_with", "value": "55"}],
            "replace_reference",
            "^55(.*)$",
            replacement="1\\1",
        ),
        rule("Fund", [{"field": "reference", "op": "starts_with", "value": "1"}], "set_fund", "NNDR"),
        rule("Cheque", [{"field": "channel", "op": "equals", "value": "Q"}], "set_method", "CHQ"),
        rule("Hold", [{"field": "reference", "op": "starts_with", "value": "9"}], "suspense", "Unknown reference"),
    )
    original = row("CT5512345678", channel="Q", scheme="BERN")
    outcome = rules.apply(original)
    assert outcome.row.account_reference == "112345678"
    assert (outcome.row.fund_code, outcome.row.method_code) == ("NNDR", "CHQ")
    assert original.account_reference == "CT5512345678" and original.fund_code == ""  # never changed in place
    assert outcome.rules_applied == ("Strip", "Rewrite", "Fund", "Cheque")
    assert outcome.reason == "Changed by rule “Strip”, rule “Rewrite”, rule “Fund”, rule “Cheque”"

    held = rules.apply(row("912345678"))
    assert held.decision == "suspense"
    assert held.reason == "Rule “Hold”: Send to suspense: Unknown reference"


def test_a_rule_that_stops_ends_the_checking():
    rules = ruleset(
        rule("First", [{"field": "reference", "op": "starts_with", "value": "5"}], "set_fund", "CTAX", stops=True),
        rule("Second", [{"field": "reference", "op": "starts_with", "value": "5"}], "skip"),
    )
    outcome = rules.apply(row())
    assert outcome.decision == "post" and outcome.rules_applied == ("First",)


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        ("(a+)+", "nested quantifier"),
        ("(\\w+\\s?)*$", "nested quantifier"),
        ("(a|ab)*c", "choice (|) inside a repeat"),
        ("(a)\\1", "backreference"),
        ("(?=a)a", "lookahead"),
        ("(?<!a)b", "lookahead or lookbehind"),
        ("x" * 201, "200 characters or fewer"),
        ("[", "not valid"),
        ("", "Enter a regular expression"),
    ],
)
def test_dangerous_or_broken_patterns_are_refused(pattern, words):
    with pytest.raises(DomainError) as caught:
        compile_rule_pattern(pattern, "value_1")
    assert words in caught.value.message and caught.value.field == "value_1"


def test_safe_patterns_are_accepted_and_fast():
    compiled = compile_rule_pattern("(\\d{3}-){2}\\d{4}|55[0-9]{8}", "value_1")
    assert compiled.fullmatch("123-456-7890")
    evil = "a" * 4000 + "!"
    assert compile_rule_pattern("[a-z]+[0-9]", "v").fullmatch(evil) is None


def test_replacements_and_amount_ranges():
    compiled = re.compile("^(..)(.*)$")
    assert check_replacement(compiled, "\\2\\1") == "\\2\\1"
    with pytest.raises(DomainError, match="group 3"):
        check_replacement(compiled, "\\3")
    with pytest.raises(DomainError, match="backslash"):
        check_replacement(compiled, "\\d")
    assert parse_amount_range("0.01 to 100.00", "v") == (1, 10000)
    assert parse_amount_range("-5 to", "v") == (-500, 10**12)
    for bad in ("1-5", "5 to 1", "x to y"):
        with pytest.raises(DomainError):
            parse_amount_range(bad, "v")


def test_many_rows_through_five_rules():
    rules = ruleset(
        rule("A", [{"field": "channel", "op": "in_list", "value": "C, Q"}], "set_method", "CHQ"),
        rule("B", [{"field": "reference", "op": "starts_with", "value": "9"}], "suspense"),
        rule("C", [{"field": "reference", "op": "matches", "value": "55[0-9]{8}"}], "set_fund", "NNDR"),
        rule("D", [{"field": "amount", "op": "amount_between", "value": "100000.00 to"}], "suspense"),
        rule("E", [{"field": "reference", "op": "starts_with", "value": "BJ"}], "set_fund", "PCN", stops=True),
    )
    rows = [row(str(500000000 + n), 100 + n, channel="PQ"[n % 2]) for n in range(10_000)]
    outcomes = [rules.apply(r) for r in rows]
    assert sum(o.row.method_code == "CHQ" for o in outcomes) == 5_000
