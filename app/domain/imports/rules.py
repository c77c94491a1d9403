"""Import rules: what finance wants done with particular lines of an import, as data.

A rule has conditions on a row's fields ("reference starts with 70", "channel is Q",
"amount between 0.01 and 1.00"), joined by "all" or "any", and one action: set the fund,
set the method, take a prefix off the reference, rewrite the reference with a regular
expression, send the row to suspense, or skip it. Rules run in order (position); a rule
that "stops" ends the evaluation when it matches, as do suspense and skip.

`rules_for(template)` compiles the active rules for a template (those for every template
and those for this one) once per import; `RuleSet.apply(row)` is then plain Python on
closures, fast enough for a million rows. Regular expressions are checked when saved:
200 characters at most, and no nested quantifiers, repeated alternations, backreferences or
lookarounds, so Python's backtracking engine cannot take exponential time on a field.
"""

from __future__ import annotations

import json
import re
import re._constants as sre_constants  # the parser is how nested quantifiers are found
import re._parser as sre_parse
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegerField, TextField, fn

from app.db import BaseModel, database, utcnow
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.imports.formats import ALLPAY_CHANNELS, FIELD_NAME_PATTERN, ImportRow
from app.domain.imports.templates import ImportTemplate
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence, parse_pounds

MAX_CONDITIONS = 5
MAX_PATTERN_LENGTH = 200
MAX_VALUE_LENGTH = 1000
MAX_LIST_ITEMS = 500
MAX_NAME_LENGTH = 120

JOINS = {"all": "All of the conditions", "any": "Any of the conditions"}
OPERATORS: dict[str, str] = {
    "equals": "is",
    "starts_with": "starts with",
    "contains": "contains",
    "in_list": "is one of",
    "matches": "matches the regular expression",
    "amount_between": "is between (amounts)",
}
ACTIONS: dict[str, str] = {
    "set_fund": "Set the fund",
    "set_method": "Set the method of payment",
    "strip_prefix": "Take a prefix off the reference",
    "replace_reference": "Change the reference with a regular expression",
    "suspense": "Send to suspense",
    "skip": "Skip the line: do not import it",
}
DECISIONS = {"post": "Post", "suspense": "Suspense", "skip": "Skip"}

# Fields every payment row has, for conditions (and the page that explains them).
ROW_FIELDS: dict[str, str] = {
    "reference": "The account reference, after any earlier rule changed it",
    "amount": "The amount in pounds (use “is between” for ranges)",
    "date": "The date paid, written yyyy-mm-dd",
    "fund": "The fund code from the file, the template's default, or an earlier rule",
    "method": "The method of payment code from the file, the template's default, or an earlier rule",
    "payer_name": "The payer's name, when the file has one",
    "narrative": "The narrative, when the file has one",
    "line_id": "The line's own id in the file (allpay transaction number, LocalGov transaction reference …)",
}
# Raw fields particular formats add (any name mapped in a CSV template can be tested too).
FORMAT_FIELDS: dict[str, dict[str, str]] = {
    "allpay": {
        "sequence": "allpay transaction (sequence) number, columns 1–7",
        "channel": "Where it was paid: "
        + ", ".join(f"{code} {name}" for code, name in ALLPAY_CHANNELS.items())
        + "; anything else is “other”",
        "scheme": "BERN when the reference field starts with the scheme prefix BERN, otherwise blank",
    },
    "dwp": {"sign": "The sign column (M): “-” for a recovery or reversal"},
    "localgov_csv": {
        "transaction_reference": "TransactionReference",
        "internal_reference": "InternalReference (basket reference)",
        "psp_reference": "PspReference",
        "office_code": "OfficeCode",
        "entry_date": "EntryDate",
        "transaction_date": "TransactionDate",
        "user_code": "UserCode",
        "vat_code": "VatCode",
        "vat_rate": "VatRate",
        "vat_amount": "VatAmount",
    },
    "csv": {"sign": "The sign column, when the template maps one", "(your own)": "Any other column the template maps"},
}

_ATTRIBUTES = {
    "reference": "account_reference",
    "fund": "fund_code",
    "method": "method_code",
    "payer_name": "payer_name",
    "narrative": "narrative",
    "line_id": "source_reference",
}


class ImportRule(BaseModel):
    template = ForeignKeyField(ImportTemplate, null=True, backref="rules", on_delete="RESTRICT")  # None: every template
    position = IntegerField(default=1, index=True)
    name = CharField(max_length=MAX_NAME_LENGTH)
    conditions = TextField(default='{"join": "all", "conditions": []}')  # JSON group
    action = CharField(max_length=30)
    action_value = TextField(default="")
    replacement = CharField(max_length=200, default="")  # replace_reference: what the match becomes
    is_active = BooleanField(default=True)
    stops = BooleanField(default=False)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    @property
    def group(self) -> dict[str, Any]:
        try:
            value = json.loads(self.conditions or "{}")
        except ValueError:
            value = {}
        if not isinstance(value, dict):
            value = {}
        return {"join": value.get("join", "all"), "conditions": list(value.get("conditions") or [])}

    def as_audit(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "template": self.template_id,
            "position": self.position,
            "conditions": self.group,
            "action": self.action,
            "action_value": self.action_value,
            "replacement": self.replacement,
            "is_active": self.is_active,
            "stops": self.stops,
        }

    def describe_conditions(self) -> str:
        return describe_group(self.group)

    def describe_action(self) -> str:
        return describe_action(self.action, self.action_value, self.replacement)


def describe_group(group: dict[str, Any]) -> str:
    parts = []
    for condition in group.get("conditions", []):
        op = condition.get("op", "")
        value = condition.get("value", "")
        if op == "amount_between":
            parts.append(f"amount is between {value}")
        else:
            parts.append(f"{condition.get('field', '')} {OPERATORS.get(op, op)} “{value}”")
    joiner = " and " if group.get("join") == "all" else " or "
    return joiner.join(parts) or "Every line"


def describe_action(action: str, value: str, replacement: str = "") -> str:
    if action == "set_fund":
        return f"Set the fund to {value}"
    if action == "set_method":
        return f"Set the method of payment to {value}"
    if action == "strip_prefix":
        return f"Take {value} off the start of the reference"
    if action == "replace_reference":
        return f"Change the part of the reference matching “{value}” to “{replacement}”"
    if action == "suspense":
        return "Send to suspense" + (f": {value}" if value else "")
    if action == "skip":
        return "Skip the line" + (f": {value}" if value else "")
    return action


# ---------------------------------------------------------------------------
# Regular expressions that cannot run away
# ---------------------------------------------------------------------------

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(sre_constants, "POSSESSIVE_REPEAT", None)
if _POSSESSIVE is not None:
    _REPEATS.add(_POSSESSIVE)
_FORBIDDEN = {
    sre_constants.GROUPREF: "a backreference (like \\1)",
    sre_constants.GROUPREF_EXISTS: "a conditional group",
    sre_constants.ASSERT: "a lookahead or lookbehind (like (?=…))",
    sre_constants.ASSERT_NOT: "a lookahead or lookbehind (like (?!…))",
}


def _subpatterns(av) -> list:
    """The parsed sub-patterns inside one node's argument."""
    found = []
    if isinstance(av, sre_parse.SubPattern):
        found.append(av)
    elif isinstance(av, (tuple, list)):
        for item in av:
            found.extend(_subpatterns(item))
    return found


def _check_tree(pattern, inside_repeat: bool) -> str | None:
    for op, av in pattern:
        if op in _FORBIDDEN:
            return _FORBIDDEN[op]
        if op in _REPEATS:
            low, high, body = av
            # A fixed count ({3}) inside a repeat is safe; a variable one ((a+)+) is not.
            if inside_repeat and low != high:
                return "a repeat inside a repeat (a nested quantifier, like (a+)+)"
            repeats = high > 1
            problem = _check_tree(body, inside_repeat or repeats)
            if problem:
                return problem
            continue
        if op == sre_constants.BRANCH and inside_repeat:
            return "a choice (|) inside a repeat, like (a|ab)*"
        for sub in _subpatterns(av):
            problem = _check_tree(sub, inside_repeat)
            if problem:
                return problem
    return None


def compile_rule_pattern(pattern: str, field_name: str) -> re.Pattern:
    """Compile an administrator's regular expression, or DomainError saying why not."""
    text = pattern or ""
    if not text.strip():
        raise DomainError("Enter a regular expression", field_name)
    if len(text) > MAX_PATTERN_LENGTH:
        raise DomainError(f"The regular expression must be {MAX_PATTERN_LENGTH} characters or fewer", field_name)
    try:
        tree = sre_parse.parse(text, re.IGNORECASE)
        compiled = re.compile(text, re.IGNORECASE)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise DomainError(f"The regular expression is not valid: {exc}", field_name) from None
    problem = _check_tree(tree, False)
    if problem:
        raise DomainError(
            f"The regular expression has {problem}. That can make checking a line very slow, "
            "so it is not allowed: write it another way",
            field_name,
        )
    return compiled


_GROUP_REFERENCE = re.compile(r"\\(?:g<([^>]*)>|(\d+)|(.))")


def check_replacement(compiled: re.Pattern, replacement: str) -> str:
    if len(replacement) > 200:
        raise DomainError("The replacement must be 200 characters or fewer", "replacement")
    for named, numbered, other in _GROUP_REFERENCE.findall(replacement):
        ref = named or numbered
        if other:
            if other != "\\":
                raise DomainError(
                    "In the replacement a backslash can only start a group, like \\1 or \\g<name>", "replacement"
                )
            continue
        if ref.isdigit():
            if int(ref) > compiled.groups:
                raise DomainError(
                    f"The replacement uses group {ref}, but the expression has fewer groups", "replacement"
                )
        elif ref not in compiled.groupindex:
            raise DomainError(f"The replacement uses group {ref}, which the expression does not name", "replacement")
    try:
        compiled.sub(replacement, "")
    except (re.error, IndexError) as exc:
        raise DomainError(f"The replacement is not valid: {exc}", "replacement") from None
    return replacement


# ---------------------------------------------------------------------------
# Checking a rule as entered
# ---------------------------------------------------------------------------


def parse_amount_range(text: str, field_name: str) -> tuple[int, int]:
    """ "0.01 to 100.00" → (1, 10000) pence; either end may be left off ("to 5.00", "100 to")."""
    value = " ".join((text or "").lower().split())
    low_text, sep, high_text = value.partition(" to ")
    if not sep:
        if value.startswith("to "):
            low_text, high_text = "", value[3:]
        elif value.endswith(" to"):
            low_text, high_text = value[:-3], ""
        else:
            raise DomainError("Enter the amounts as lowest to highest, like 0.01 to 100.00", field_name)
    try:
        low = parse_pounds(low_text, allow_negative=True) if low_text.strip() else -(10**12)
        high = parse_pounds(high_text, allow_negative=True) if high_text.strip() else 10**12
    except DomainError:
        raise DomainError("Enter the amounts in pounds, like 0.01 to 100.00", field_name) from None
    if low > high:
        raise DomainError("The first amount must be the lower one, like 0.01 to 100.00", field_name)
    return low, high


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,\n]", text or "") if item.strip()]


def clean_condition(condition: dict[str, str], number: int) -> dict[str, str] | None:
    """One condition row; None when it was left blank."""
    field_name = (condition.get("field") or "").strip().lower()
    op = (condition.get("op") or "").strip()
    value = (condition.get("value") or "").strip()
    if op == "amount_between":
        field_name = field_name or "amount"
    if not field_name and not value:
        return None
    if not field_name:
        raise DomainError(f"Enter the field condition {number} tests, like reference", f"field_{number}")
    if not FIELD_NAME_PATTERN.match(field_name):
        raise DomainError(
            f"The field in condition {number} must be a field name, like reference or channel", f"field_{number}"
        )
    if op not in OPERATORS:
        raise DomainError(f"Choose how condition {number} tests the field", f"op_{number}")
    if op == "amount_between" and field_name != "amount":
        raise DomainError(f"“Is between” needs the field amount in condition {number}", f"field_{number}")
    if not value:
        raise DomainError(f"Enter the value condition {number} tests for", f"value_{number}")
    if len(value) > MAX_VALUE_LENGTH:
        raise DomainError(
            f"The value in condition {number} must be {MAX_VALUE_LENGTH} characters or fewer", f"value_{number}"
        )
    if op == "matches":
        compile_rule_pattern(value, f"value_{number}")
    elif op == "amount_between":
        parse_amount_range(value, f"value_{number}")
    elif op in ("in_list", "starts_with") and len(_split_list(value)) > MAX_LIST_ITEMS:
        raise DomainError(f"Condition {number} can list {MAX_LIST_ITEMS} values at most", f"value_{number}")
    return {"field": field_name, "op": op, "value": value}


def clean_rule(values: dict[str, Any]) -> dict[str, Any]:
    """Model values for a rule from what was entered (conditions as a list of dicts), or
    DomainError naming the field ("name", "field_2", "value_3", "action_value" …)."""
    name = " ".join((values.get("name") or "").split())
    if not name:
        raise DomainError("Enter a name for the rule", "name")
    if len(name) > MAX_NAME_LENGTH:
        raise DomainError(f"The name must be {MAX_NAME_LENGTH} characters or fewer", "name")
    template_id = values.get("template")
    template = None
    if template_id not in (None, ""):
        template = (
            ImportTemplate.get_or_none(ImportTemplate.id == int(template_id)) if str(template_id).isdigit() else None
        )
        if template is None:
            raise DomainError("Choose a template from the list", "template")
    join = values.get("join") or ""
    if join not in JOINS:
        raise DomainError("Choose whether all or any of the conditions must be met", "join")
    given = values.get("conditions")
    if given is None:  # flat form fields: field_1, op_1, value_1 …
        given = [
            {
                "field": values.get(f"field_{n}", ""),
                "op": values.get(f"op_{n}", ""),
                "value": values.get(f"value_{n}", ""),
            }
            for n in range(1, MAX_CONDITIONS + 1)
        ]
    conditions = []
    for number, condition in enumerate(given, start=1):
        cleaned = clean_condition(condition, number)
        if cleaned:
            conditions.append(cleaned)
    if not conditions:
        raise DomainError("Enter at least one condition", "field_1")
    if len(conditions) > MAX_CONDITIONS:
        raise DomainError(f"A rule can have {MAX_CONDITIONS} conditions at most", "field_1")

    action = values.get("action") or ""
    if action not in ACTIONS:
        raise DomainError("Choose what the rule does", "action")
    action_value = (values.get("action_value") or "").strip()
    replacement = ""
    if action == "set_fund":
        code = action_value.upper()
        if not code:
            raise DomainError("Enter the code of the fund to set, like CTAX", "action_value")
        if Fund.by_code(code) is None:
            raise DomainError(f"There is no fund with the code {code[:20]}", "action_value")
        action_value = code
    elif action == "set_method":
        code = action_value.upper()
        if not code:
            raise DomainError("Enter the code of the method of payment to set, like ALLPAY", "action_value")
        if MethodOfPayment.by_code(code) is None:
            raise DomainError(f"There is no method of payment with the code {code[:20]}", "action_value")
        action_value = code
    elif action == "strip_prefix":
        prefixes = _split_list(action_value)
        if not prefixes:
            raise DomainError("Enter the prefix to take off, like BERN", "action_value")
        if any(len(p) > 40 for p in prefixes) or len(prefixes) > 20:
            raise DomainError("Enter up to 20 prefixes of up to 40 characters, separated by commas", "action_value")
        action_value = ", ".join(p.upper() for p in prefixes)
    elif action == "replace_reference":
        compiled = compile_rule_pattern(action_value, "action_value")
        replacement = check_replacement(compiled, values.get("replacement") or "")
    elif len(action_value) > 200:
        raise DomainError("The reason must be 200 characters or fewer", "action_value")
    return {
        "name": name,
        "template": template.id if template else None,
        "conditions": json.dumps({"join": join, "conditions": conditions}, sort_keys=True),
        "action": action,
        "action_value": action_value,
        "replacement": replacement,
        "stops": bool(values.get("stops")),
    }


# ---------------------------------------------------------------------------
# Compiled rules
# ---------------------------------------------------------------------------


class RuleOutcome(NamedTuple):
    row: ImportRow  # the row, or a changed copy
    decision: str  # "post" | "suspense" | "skip"
    reason: str  # which rule decided, in words ("" when no rule applied)
    rules_applied: tuple[str, ...]  # names of the rules that matched, in order


def _getter(name: str) -> Callable[[ImportRow], str]:
    attribute = _ATTRIBUTES.get(name)
    if attribute:
        return attrgetter(attribute)
    if name == "amount":
        return lambda row: format_pence(row.amount_pence, symbol=False).replace(",", "")
    if name == "date":
        return lambda row: row.business_date.isoformat()
    return lambda row: row.fields.get(name, "")


def compile_condition(condition: dict[str, str]) -> Callable[[ImportRow], bool]:
    op = condition["op"]
    value = condition["value"]
    if op == "amount_between":
        low, high = parse_amount_range(value, "value")
        return lambda row: low <= row.amount_pence <= high
    get = _getter(condition["field"])
    # Text compares without regard to capitals; a value with no letters skips the upper-casing.
    if op == "equals":
        wanted = value.strip().upper()
        if wanted == wanted.lower():
            return lambda row: get(row) == wanted
        return lambda row: get(row).upper() == wanted
    if op == "starts_with":
        prefixes = tuple(item.upper() for item in _split_list(value))
        if all(p == p.lower() for p in prefixes):
            return lambda row: get(row).startswith(prefixes)
        return lambda row: get(row).upper().startswith(prefixes)
    if op == "contains":
        part = value.strip().upper()
        if part == part.lower():
            return lambda row: part in get(row)
        return lambda row: part in get(row).upper()
    if op == "in_list":
        items = frozenset(item.upper() for item in _split_list(value))
        if all(i == i.lower() for i in items):
            return lambda row: get(row) in items
        return lambda row: get(row).upper() in items
    if op == "matches":
        fullmatch = compile_rule_pattern(value, "value").fullmatch
        return lambda row: fullmatch(get(row)) is not None
    raise DomainError(f"Unknown condition {op}")


def compile_group(group: dict[str, Any]) -> Callable[[ImportRow], bool]:
    tests = [compile_condition(c) for c in group.get("conditions", [])]
    if not tests:
        return lambda row: False
    if len(tests) == 1:
        return tests[0]
    if group.get("join") == "any":
        if len(tests) == 2:
            a, b = tests
            return lambda row: a(row) or b(row)
        return lambda row: any(test(row) for test in tests)
    if len(tests) == 2:
        a, b = tests
        return lambda row: a(row) and b(row)
    return lambda row: all(test(row) for test in tests)


@dataclass
class CompiledRule:
    id: int | None
    name: str
    test: Callable[[ImportRow], bool]
    action: str
    value: Any
    replacement: str
    stops: bool
    reason: str


def compile_rule(rule: ImportRule | dict[str, Any]) -> CompiledRule:
    """A saved rule (or the cleaned values of one not yet saved) ready to apply."""
    if isinstance(rule, dict):
        values = rule
        group = json.loads(values["conditions"]) if isinstance(values["conditions"], str) else values["conditions"]
        rule_id = None
    else:
        values = {
            "name": rule.name,
            "action": rule.action,
            "action_value": rule.action_value,
            "replacement": rule.replacement,
            "stops": rule.stops,
        }
        group = rule.group
        rule_id = rule.id
    action = values["action"]
    raw = values.get("action_value") or ""
    value: Any = raw
    if action == "strip_prefix":
        value = tuple(p.upper() for p in _split_list(raw))
    elif action == "replace_reference":
        value = compile_rule_pattern(raw, "action_value")
    name = values["name"]
    return CompiledRule(
        id=rule_id,
        name=name,
        test=compile_group(group),
        action=action,
        value=value,
        replacement=values.get("replacement") or "",
        stops=bool(values.get("stops")),
        reason=f"Rule “{name}”: {describe_action(action, raw, values.get('replacement') or '')}",
    )


_NO_RULES: tuple[str, ...] = ()


@dataclass
class RuleSet:
    rules: list[CompiledRule] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # saved rules that no longer compile (skipped)

    def __post_init__(self) -> None:
        self._pairs: list[tuple[Callable[[ImportRow], bool], CompiledRule]] | None = None

    def apply(self, row: ImportRow) -> RuleOutcome:
        pairs = self._pairs
        if pairs is None or len(pairs) != len(self.rules):
            pairs = self._pairs = [(rule.test, rule) for rule in self.rules]
        current = row
        copied = False
        applied: list[str] | None = None
        for test, rule in pairs:
            if not test(current):
                continue
            if applied is None:
                applied = [rule.name]
            else:
                applied.append(rule.name)
            action = rule.action
            if action == "suspense" or action == "skip":
                return RuleOutcome(current, action, rule.reason, tuple(applied))
            if not copied:
                current = current.copy()
                copied = True
            if action == "set_fund":
                current.fund_code = rule.value
            elif action == "set_method":
                current.method_code = rule.value
            elif action == "strip_prefix":
                reference = current.account_reference
                upper = reference.upper()
                for prefix in rule.value:
                    if upper.startswith(prefix) and len(reference) > len(prefix):
                        current.account_reference = reference[len(prefix) :].lstrip()
                        break
            elif action == "replace_reference":
                try:
                    current.account_reference = rule.value.sub(rule.replacement, current.account_reference).strip()
                except (re.error, IndexError):
                    pass  # checked when saved; a surprise leaves the reference as it was
            if rule.stops:
                break
        if applied is None:
            return RuleOutcome(current, "post", "", _NO_RULES)
        return RuleOutcome(current, "post", "Changed by " + ", ".join(f"rule “{n}”" for n in applied), tuple(applied))


def active_rules(template: ImportTemplate | None):
    query = ImportRule.select().where(ImportRule.is_active == True)  # noqa: E712
    if template is not None and getattr(template, "id", None) is not None:
        query = query.where(ImportRule.template.is_null() | (ImportRule.template == template.id))
    else:
        query = query.where(ImportRule.template.is_null())
    return query.order_by(ImportRule.position, ImportRule.id)


def rules_for(template: ImportTemplate | None, *, extra: dict[str, Any] | None = None) -> RuleSet:
    """The template's active rules, compiled once. `extra` (cleaned values of an unsaved rule,
    with an optional "id" it replaces and "position") is included for trying a rule out."""
    ruleset = RuleSet()
    rules: list[tuple[int, int, CompiledRule]] = []
    replaced = extra.get("id") if extra else None
    for rule in active_rules(template):
        if replaced is not None and rule.id == replaced:
            continue
        try:
            rules.append((rule.position, rule.id, compile_rule(rule)))
        except (DomainError, ValueError, KeyError) as exc:
            message = exc.message if isinstance(exc, DomainError) else str(exc)
            ruleset.problems.append(f"Rule “{rule.name}” was left out: {message}")
    if extra is not None:
        position = extra.get("position")
        if position is None:
            position = max((p for p, _, _ in rules), default=0) + 1
        rules.append((position, 1 << 62, compile_rule(extra)))
    rules.sort(key=lambda item: (item[0], item[1]))
    return RuleSet([compiled for _, _, compiled in rules], ruleset.problems)


# ---------------------------------------------------------------------------
# Saving (audited)
# ---------------------------------------------------------------------------


def _record(rule: ImportRule, actor, action: str, summary: str, before=None, after=None, ip_address: str = ""):
    audit.record(
        f"import_rule.{action}",
        actor=actor,
        object_type="import_rule",
        object_id=rule.id,
        summary=summary,
        before=before,
        after=after,
        ip_address=ip_address,
    )


def create_rule(actor, values: dict[str, Any], *, ip_address: str = "") -> ImportRule:
    cleaned = clean_rule(values)
    with database.atomic():
        last = ImportRule.select(fn.MAX(ImportRule.position)).scalar() or 0
        rule = ImportRule.create(position=last + 1, **cleaned)
        _record(
            rule, actor, "create", f"Added the import rule {rule.name}", after=rule.as_audit(), ip_address=ip_address
        )
    return rule


def change_rule(rule: ImportRule, actor, values: dict[str, Any], *, ip_address: str = "") -> ImportRule:
    cleaned = clean_rule(values)
    before = rule.as_audit()
    for key, value in cleaned.items():
        setattr(rule, key, value)
    b, a = audit.changes(before, rule.as_audit())
    if not a:
        return rule
    rule.updated_at = utcnow()
    with database.atomic():
        rule.save()
        _record(rule, actor, "change", f"Changed the import rule {rule.name}", b, a, ip_address)
    return rule


def set_rule_active(rule: ImportRule, actor, active: bool, *, ip_address: str = "") -> ImportRule:
    if rule.is_active == active:
        return rule
    rule.is_active = active
    rule.updated_at = utcnow()
    with database.atomic():
        rule.save()
        _record(
            rule,
            actor,
            "enable" if active else "disable",
            f"Turned {'on' if active else 'off'} the import rule {rule.name}",
            {"is_active": not active},
            {"is_active": active},
            ip_address,
        )
    return rule


def ordered_rules():
    return ImportRule.select().order_by(ImportRule.position, ImportRule.id)


def move_rule(rule: ImportRule, actor, direction: str, *, ip_address: str = "") -> bool:
    """Swap a rule with the one above or below it in the order. False if it is already at the end."""
    if direction not in ("up", "down"):
        raise DomainError("A rule moves up or down")
    with database.atomic():
        rules = list(ordered_rules())
        # Positions may have gaps or ties: number them 1.. first so a swap always moves.
        for index, item in enumerate(rules, start=1):
            if item.position != index:
                ImportRule.update(position=index).where(ImportRule.id == item.id).execute()
                item.position = index
        index = next(i for i, item in enumerate(rules) if item.id == rule.id)
        other_index = index - 1 if direction == "up" else index + 1
        if not 0 <= other_index < len(rules):
            return False
        other = rules[other_index]
        mine, theirs = rules[index].position, other.position
        ImportRule.update(position=theirs).where(ImportRule.id == rule.id).execute()
        ImportRule.update(position=mine).where(ImportRule.id == other.id).execute()
        rule.position = theirs
        _record(
            rule,
            actor,
            "move",
            f"Moved the import rule {rule.name} {direction}",
            {"position": mine},
            {"position": theirs},
            ip_address,
        )
    return True
