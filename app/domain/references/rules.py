"""Reference rules: which references and amounts a fund accepts, on every channel.

A fund's rule is data (spec/reference-validation.md §1, §6, §7):

- fund-level settings (`ReferenceRule`): extra characters to take out when normalising,
  the stop message the public sees, what to do about overpayments, and a version
  number that changes whenever anything in the rule changes;
- an ordered list of formats (`ReferenceFormat`), each effective-dated and open to the
  public, staff or both, each with its own checks in the spec's order: length,
  character type, regular expression (full match, RE2 so it cannot hang), mask, check
  digit. The first format a reference passes wins; when none passes, staff see why the
  closest one failed;
- the fund's own limits (minimum and maximum amount, whether the account must exist),
  which always apply, with or without a format.

`validate_reference()` is the one entry point for the citizen journey, staff payments,
imports, the API and the re-check at checkout. A fund's formats are compiled once into
closures and cached per process; the cache is dropped when this process changes the
rule and re-checked against the stored version at most every `CACHE_SECONDS`, so a
validation makes no database query except the account lookup (made only when the fund
requires the account to exist or has an account list loaded).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import re2
from peewee import (
    JOIN,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    TextField,
)

from app.db import BaseModel, database, utcnow
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.money import format_pence
from app.domain.references.checkdigits import (
    CheckDigitConfig,
    CheckDigitSpec,
    compile_check,
    spec_from,
    weights_needed,
)
from app.domain.references.masks import DIGITS, LETTERS, CompiledMask, compile_mask
from app.domain.ukdates import business_date

MAX_REFERENCE_LENGTH = 40  # one limit everywhere: forms, formats, masks, the ledger
MAX_INPUT_LENGTH = 400  # longer input is refused before any work is done on it
MAX_PATTERN_LENGTH = 300
MAX_PATTERN_PROGRAM = 3000  # RE2 program size: refuses patterns that are huge once expanded
MAX_LABEL_LENGTH = 120
CACHE_SECONDS = 2.0

CHANNELS = ("public", "staff")
CHARACTER_TYPES: dict[str, str] = {
    "": "Any characters",
    "numeric": "Numbers only",
    "alpha": "Letters only",
    "alphanumeric": "Letters and numbers",
}
_CHARACTER_SETS = {"numeric": DIGITS, "alpha": LETTERS, "alphanumeric": LETTERS + DIGITS}
_CHARACTER_WORDS = {
    "numeric": "only digits (0 to 9)",
    "alpha": "only letters (A to Z)",
    "alphanumeric": "only letters and digits",
}
OVERPAYMENT: dict[str, str] = {
    "allow": "Allow",
    "warn": "Warn staff",
    "refuse": "Refuse",
}
_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class ReferenceRule(BaseModel):
    """A fund's reference settings. A fund with no row has no formats and default settings."""

    fund = ForeignKeyField(Fund, unique=True, backref="reference_rules", on_delete="RESTRICT")
    # Characters taken out of a reference before checking, as well as all whitespace, e.g. "-/".
    remove_characters = CharField(max_length=20, default="")
    # What the public sees for an account on stop; "" shows the account's own stop message.
    public_stop_message = TextField(default="")
    overpayment = CharField(max_length=10, default="allow")
    # Bumped on every change to the rule, its formats, their check-digit configurations or the
    # fund's account list: other processes compare it to decide when to recompile.
    version = IntegerField(default=1)
    updated_at = DateTimeField(default=utcnow)

    audit_fields = ("remove_characters", "public_stop_message", "overpayment")

    def as_audit(self) -> dict:
        return {name: getattr(self, name) for name in self.audit_fields}


class ReferenceFormat(BaseModel):
    fund = ForeignKeyField(Fund, backref="reference_formats", on_delete="RESTRICT")
    position = IntegerField(default=1)  # formats are tried in this order
    label = CharField(max_length=MAX_LABEL_LENGTH)  # e.g. "New council tax format"
    effective_from = DateField(null=True)  # first UK date it is accepted
    effective_to = DateField(null=True)  # last UK date it is accepted
    public = BooleanField(default=True)
    staff = BooleanField(default=True)
    min_length = IntegerField(null=True)
    max_length = IntegerField(null=True)
    character_type = CharField(max_length=20, default="")
    pattern = TextField(default="")  # regular expression, RE2 syntax, matched against the whole reference
    mask = CharField(max_length=100, default="")
    check_digit = ForeignKeyField(CheckDigitConfig, null=True, backref="formats", on_delete="RESTRICT")
    example = CharField(max_length=MAX_REFERENCE_LENGTH, default="")  # shown in messages: "like 123456780"
    staff_warning = TextField(default="")  # shown to staff when a reference matches this format
    known_good = TextField(default="")  # one reference a line: must pass before the format is saved
    known_bad = TextField(default="")  # one reference a line: must fail
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("fund", "position"), False),)

    audit_fields = (
        "position",
        "label",
        "effective_from",
        "effective_to",
        "public",
        "staff",
        "min_length",
        "max_length",
        "character_type",
        "pattern",
        "mask",
        "check_digit",
        "example",
        "staff_warning",
        "known_good",
        "known_bad",
    )

    def as_audit(self) -> dict:
        data = {}
        for name in self.audit_fields:
            value = self.check_digit_id if name == "check_digit" else getattr(self, name)
            data[name] = value.isoformat() if isinstance(value, dt.date) else value
        return data


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


class CheckOutcome(NamedTuple):  # a NamedTuple: immutable and the cheapest object to make
    check: str  # fund, reference, amount, format | length, character_type, pattern, mask, check_digit,
    #             account_exists, on_stop, overpayment
    passed: bool
    message: str
    field: str = "reference"  # the form field a failure belongs to: fund, reference or amount


@dataclass(slots=True)
class ValidationResult:
    valid: bool
    reference: str  # normalised
    checks: list[CheckOutcome]
    account: object | None = None  # AccountHolder; always None on the public channel
    format_id: int | None = None  # the format that matched (None when none did)
    format_label: str = ""  # the format that matched, or the closest one when none did
    warnings: list[str] = field(default_factory=list)  # for staff, e.g. "old format"
    channel: str = "public"

    @property
    def message(self) -> str:
        """The first failure, in words for the person who entered the reference."""
        for outcome in self.checks:
            if not outcome.passed:
                return outcome.message
        return ""

    @property
    def errors(self) -> dict[str, str]:
        """The first failure for each form field: {"reference": "...", "amount": "..."}."""
        errors: dict[str, str] = {}
        for outcome in self.checks:
            if not outcome.passed and outcome.field not in errors:
                errors[outcome.field] = outcome.message
        return errors

    def as_dict(self) -> dict:
        """The JSON shape of POST /api/v1/references/validate."""
        account = None
        if self.account is not None:
            a = self.account
            account = {
                "reference": a.reference,
                "name": a.name,
                "address": a.address,
                "balance_pence": a.balance_pence,
                "on_stop": bool(a.on_stop_message),
                "on_stop_message": a.on_stop_message,
            }
        return {
            "valid": self.valid,
            "reference": self.reference,
            "checks": [{"check": c.check, "passed": c.passed, "message": c.message} for c in self.checks],
            "account": account,
        }


# ---------------------------------------------------------------------------
# Normalising
# ---------------------------------------------------------------------------


def _remove_table(remove_characters: str) -> dict[int, None] | None:
    chars = {c for c in (remove_characters or "") if not c.isspace()}
    return {ord(c): None for c in chars} or None


def normalise_reference(reference, remove_characters: str = "") -> str:
    """Trim, take out every space (and `remove_characters`), upper-case (ASCII only)."""
    return _normaliser(_remove_table(remove_characters))(reference)


def _normaliser(table: dict[int, None] | None) -> Callable[[object], str]:
    def normalise(reference) -> str:
        if not isinstance(reference, str):
            reference = "" if reference is None else str(reference)
        text = "".join(reference.split())
        if table:
            text = text.translate(table)
        # str.upper() would turn "ß" into "SS"; only ASCII letters change case.
        return text.upper() if text.isascii() else text.translate(_ASCII_UPPER)

    return normalise


def _lower_first(label: str) -> str:
    label = (label or "reference").strip()
    if len(label) > 1 and label[1].isupper():  # "PCN number" stays as it is
        return label
    return label[:1].lower() + label[1:]


def _upper_first(label: str) -> str:
    label = (label or "Reference").strip()
    return label[:1].upper() + label[1:]


# ---------------------------------------------------------------------------
# Regular expressions: RE2, linear time, refused when saved if unsupported
# ---------------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 4 << 20

_UNSUPPORTED = (
    (re.compile(r"\\[1-9]|\(\?P=|\\k<"), "a backreference (like \\1)"),
    (re.compile(r"\(\?<?[=!]"), "a lookahead or lookbehind (like (?=…) or (?!…))"),
    (re.compile(r"\(\?\("), "a conditional group"),
    (re.compile(r"\(\?>|[*+?}][+]"), "an atomic group or possessive quantifier"),
)


def compile_pattern(pattern: str):
    """Compile a configured regular expression with RE2, or raise DomainError saying why not.

    RE2 runs in time linear in the input, so no pattern can hang the service; it does not
    support backreferences or lookaround, which are refused with a message saying so.
    """
    text = (pattern or "").strip()
    if not text:
        raise DomainError("Enter a regular expression", "pattern")
    if len(text) > MAX_PATTERN_LENGTH:
        raise DomainError(f"The regular expression must be {MAX_PATTERN_LENGTH} characters or fewer", "pattern")
    for finder, words in _UNSUPPORTED:
        if finder.search(text):
            raise DomainError(
                f"The regular expression uses {words}. These are not allowed, because they can make checking "
                "a reference very slow: write it without them",
                "pattern",
            )
    try:
        compiled = re2.compile(text, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise DomainError(f"The regular expression is not valid: {detail}", "pattern") from exc
    if compiled.programsize > MAX_PATTERN_PROGRAM:
        raise DomainError("The regular expression is too complicated: make it shorter or simpler", "pattern")
    return compiled


# ---------------------------------------------------------------------------
# Compiled formats and rules
# ---------------------------------------------------------------------------

_Step = Callable[[str], "str | None"]  # reference -> None when it passes, else the reason for staff


class CompiledFormat:
    """One format's checks, ready to run: no database, no parsing."""

    __slots__ = (
        "id",
        "label",
        "effective_from",
        "effective_to",
        "public",
        "staff",
        "example",
        "staff_warning",
        "steps",
        "passed",
        "mask",
        "check_spec",
        "check_position",
        "check",
        "min_length",
        "max_length",
        "character_type",
        "pattern",
        "passes",
    )

    def __init__(self) -> None:
        self.id: int | None = None
        self.steps: tuple[tuple[str, _Step], ...] = ()
        self.passed: tuple[CheckOutcome, ...] = ()
        self.mask: CompiledMask | None = None
        self.check_spec: CheckDigitSpec | None = None
        self.check_position: int | None = None
        self.check = None
        self.pattern = None
        # passes(reference) -> bool: every check at once, no reasons; set by compile_format.
        self.passes = self._passes_slowly

    def _passes_slowly(self, reference: str) -> bool:
        return self.run(reference)[1] is None

    def in_effect(self, on: dt.date, channel: str) -> bool:
        if channel == "public" and not self.public:
            return False
        if channel == "staff" and not self.staff:
            return False
        if self.effective_from is not None and on < self.effective_from:
            return False
        return self.effective_to is None or on <= self.effective_to

    def run(self, reference: str) -> tuple[int, str | None]:
        """(number of checks passed, None) when the reference passes, else (index, reason)."""
        for index, (_name, step) in enumerate(self.steps):
            reason = step(reference)
            if reason is not None:
                return index, reason
        return len(self.steps), None

    def outcomes(self, reference: str) -> list[CheckOutcome]:
        index, reason = self.run(reference)
        outcomes = list(self.passed[:index])
        if reason is not None:
            outcomes.append(CheckOutcome(self.steps[index][0], False, reason))
        return outcomes


def _length_step(lo: int | None, hi: int | None) -> tuple[_Step, str]:
    if lo and hi and lo == hi:
        rule, passed = f"must be {lo} characters long", f"Has {lo} characters"
    elif lo and hi:
        rule, passed = f"must be between {lo} and {hi} characters long", f"Has {lo} to {hi} characters"
    elif lo:
        rule, passed = f"must be at least {lo} characters long", f"Has at least {lo} characters"
    else:
        rule, passed = f"must be {hi} characters or fewer", f"Has {hi} characters or fewer"
    low = lo or 0
    high = hi or MAX_REFERENCE_LENGTH

    def step(reference: str) -> str | None:
        n = len(reference)
        if low <= n <= high:
            return None
        return f"The reference {rule} (it has {n})"

    return step, passed


def _character_step(kind: str) -> tuple[_Step, str]:
    allowed = frozenset(_CHARACTER_SETS[kind])
    matcher = re.compile("[" + _CHARACTER_SETS[kind] + "]*").fullmatch  # ASCII classes, no backtracking
    words = _CHARACTER_WORDS[kind]

    def step(reference: str) -> str | None:
        if matcher(reference) is not None:
            return None
        for index, char in enumerate(reference, start=1):
            if char not in allowed:
                return f"The reference must contain {words}: character {index} is “{char}”"
        return None  # pragma: no cover - the matcher and the loop agree

    return step, f"Contains {words}"


def _pattern_step(compiled, label: str) -> tuple[_Step, str]:
    fullmatch = compiled.fullmatch

    def step(reference: str) -> str | None:
        if fullmatch(reference) is not None:
            return None
        return f"The reference does not match the pattern for “{label}”"

    return step, "Matches the pattern"


def _mask_step(mask: CompiledMask) -> tuple[_Step, str]:
    fullmatch = mask._pattern.fullmatch

    def step(reference: str) -> str | None:
        if fullmatch(reference) is not None:
            return None
        failure = mask.explain(reference)
        return failure.message if failure else None

    return step, f"Fits the mask: {mask.describe()}"


def _check_digit_step(check) -> tuple[_Step, str]:
    def step(reference: str) -> str | None:
        result = check(reference)
        return None if result.valid else result.reason

    return step, "The check character is right"


def _value(source, name: str, default=None):
    if isinstance(source, dict):
        return source.get(name, default)
    return getattr(source, name, default)


def compile_format(source, *, check_config=None, format_id: int | None = None) -> CompiledFormat:
    """Compile a format from a saved ReferenceFormat or a dict of cleaned values.

    `check_config` is the CheckDigitConfig (or spec) when the source names one.
    Raises DomainError when the format cannot be used.
    """
    compiled = CompiledFormat()
    compiled.id = format_id if format_id is not None else _value(source, "id")
    compiled.label = _value(source, "label", "") or "Reference format"
    compiled.effective_from = _value(source, "effective_from")
    compiled.effective_to = _value(source, "effective_to")
    compiled.public = bool(_value(source, "public", True))
    compiled.staff = bool(_value(source, "staff", True))
    compiled.example = _value(source, "example", "") or ""
    compiled.staff_warning = _value(source, "staff_warning", "") or ""
    compiled.min_length = _value(source, "min_length")
    compiled.max_length = _value(source, "max_length")
    compiled.character_type = _value(source, "character_type", "") or ""

    steps: list[tuple[str, _Step]] = []
    passed: list[CheckOutcome] = []

    def add(name: str, made: tuple[_Step, str]) -> None:
        steps.append((name, made[0]))
        passed.append(CheckOutcome(name, True, made[1]))

    if compiled.min_length or compiled.max_length:
        add("length", _length_step(compiled.min_length, compiled.max_length))
    if compiled.character_type:
        if compiled.character_type not in _CHARACTER_SETS:
            raise DomainError("Choose the type of characters the reference can contain", "character_type")
        add("character_type", _character_step(compiled.character_type))
    pattern = _value(source, "pattern", "") or ""
    if pattern:
        compiled.pattern = compile_pattern(pattern)
        add("pattern", _pattern_step(compiled.pattern, compiled.label))

    spec = None
    if check_config is not None:
        spec = check_config if isinstance(check_config, CheckDigitSpec) else spec_from(check_config)
        compiled.check_spec = spec
    mask_text = _value(source, "mask", "") or ""
    if mask_text:
        check_chars = "".join(sorted(spec.check_characters())) if spec else DIGITS
        compiled.mask = compile_mask(mask_text, check_characters=check_chars)
        add("mask", _mask_step(compiled.mask))
    fast_check = None
    if spec is not None:
        compiled.check_position = compiled.mask.check_index if compiled.mask else None
        if spec.algorithm != "weighted_sum":
            compiled.check_position = None  # always the last character
        compiled.check = check = compile_check(spec, check_position=compiled.check_position)
        fast_check = getattr(check, "passes", None) or (lambda reference: check(reference).valid)
        add("check_digit", _check_digit_step(compiled.check))

    compiled.steps = tuple(steps)
    compiled.passed = tuple(passed)
    gate = _gate(compiled)
    if gate is not False:
        tests = [t for t in (gate, compiled.pattern.fullmatch if compiled.pattern else None, fast_check) if t]
        compiled.passes = _all_of(tests)
    return compiled


def _gate(compiled: CompiledFormat):
    """One precompiled regular expression for length, character type and mask together
    (single character classes, no nesting: it cannot backtrack badly), so a reference that
    passes them costs one match. None: nothing to check; False: use the step-by-step path."""
    lo, hi = compiled.min_length or 0, compiled.max_length or MAX_REFERENCE_LENGTH
    kind = compiled.character_type
    if compiled.mask is None:
        if not (compiled.min_length or compiled.max_length or kind):
            return None
        chars = _CHARACTER_SETS.get(kind)
        body = f"[{re.escape(chars)}]" if chars else "."
        return re.compile(f"{body}{{{lo},{hi}}}", re.DOTALL).fullmatch
    if not lo <= compiled.mask.length <= hi:
        return False
    allowed = set(_CHARACTER_SETS[kind]) if kind else None
    parts = []
    for position in compiled.mask.positions:
        chars = sorted(position.allowed & allowed if allowed is not None else position.allowed)
        if not chars:
            return False
        parts.append("[" + "".join(re.escape(c) for c in chars) + "]")
    return re.compile("".join(parts)).fullmatch


def _all_of(tests: list) -> Callable[[str], object]:
    """reference -> truthy when every test passes (no bool() call: this is the hot path)."""
    if not tests:
        return lambda reference: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda reference: a(reference) and b(reference)
    a, b, c = tests
    return lambda reference: a(reference) and b(reference) and c(reference)


def _broken_format(fmt: ReferenceFormat, error: DomainError) -> CompiledFormat:
    """A stored format that no longer compiles refuses everything (fail closed) and says why."""
    compiled = CompiledFormat()
    compiled.id = fmt.id
    compiled.label = fmt.label
    compiled.effective_from = fmt.effective_from
    compiled.effective_to = fmt.effective_to
    compiled.public = fmt.public
    compiled.staff = fmt.staff
    compiled.example = fmt.example
    compiled.staff_warning = ""
    message = f"The format “{fmt.label}” cannot be used ({error.message}): an administrator needs to correct it"
    compiled.steps = (("format", lambda _reference: message),)
    compiled.passed = (CheckOutcome("format", True, ""),)
    return compiled


class CompiledRule:
    __slots__ = (
        "fund_id",
        "version",
        "db",
        "checked_at",
        "normalise",
        "formats",
        "has_accounts",
        "public_stop_message",
        "overpayment",
        "_active",
        "undated",
        "failures",
    )

    def __init__(self, fund_id: int, version: int, db, formats, *, remove_characters="", has_accounts=False):
        self.fund_id = fund_id
        self.version = version
        self.db = db
        self.checked_at = time.monotonic()
        self.normalise = _normaliser(_remove_table(remove_characters))
        self.formats: tuple[CompiledFormat, ...] = tuple(formats)
        self.has_accounts = has_accounts
        self.public_stop_message = ""
        self.overpayment = "allow"
        self._active: dict[tuple[dt.date, str], tuple[CompiledFormat, ...]] = {}
        # With no effective dates anywhere, the formats in effect depend only on the channel.
        self.undated: dict[str, tuple[CompiledFormat, ...]] | None = None
        if not any(f.effective_from or f.effective_to for f in self.formats):
            self.undated = {c: tuple(f for f in self.formats if f.in_effect(dt.date.min, c)) for c in CHANNELS}
        # Public failure outcomes, by (label, example): the same few messages again and again.
        self.failures: dict[tuple[str, str], CheckOutcome] = {}

    def active_formats(self, on: dt.date | None, channel: str) -> tuple[CompiledFormat, ...]:
        if self.undated is not None:
            return self.undated[channel]
        key = (on or _uk_today(), channel)
        found = self._active.get(key)
        if found is None:
            if len(self._active) > 64:  # imports can ask about many past dates
                self._active.clear()
            found = tuple(f for f in self.formats if f.in_effect(key[0], channel))
            self._active[key] = found
        return found

    def matching_format(self, reference: str, on: dt.date, channel: str = "staff") -> CompiledFormat | None:
        for fmt in self.active_formats(on, channel):
            if fmt.passes(reference):
                return fmt
        return None


_cache: dict[int, CompiledRule] = {}


def clear_rule_cache() -> None:
    """Forget every compiled rule in this process (tests that roll back call this)."""
    _cache.clear()


def _invalidate(fund_id: int) -> None:
    _cache.pop(fund_id, None)


def _stored_version(fund_id: int) -> int:
    row = ReferenceRule.select(ReferenceRule.version).where(ReferenceRule.fund == fund_id).first()
    return row.version if row else 0


def _load_rule(fund_id: int) -> CompiledRule:
    from app.domain.references.accounts import AccountHolder

    rule = ReferenceRule.get_or_none(ReferenceRule.fund == fund_id)
    query = (
        ReferenceFormat.select(ReferenceFormat, CheckDigitConfig)
        .join(CheckDigitConfig, JOIN.LEFT_OUTER)
        .where(ReferenceFormat.fund == fund_id)
        .order_by(ReferenceFormat.position, ReferenceFormat.id)
    )
    formats = []
    for fmt in query:
        try:
            formats.append(compile_format(fmt, check_config=fmt.check_digit if fmt.check_digit_id else None))
        except DomainError as error:
            formats.append(_broken_format(fmt, error))
    has_accounts = AccountHolder.select(AccountHolder.id).where(AccountHolder.fund == fund_id).exists()
    compiled = CompiledRule(
        fund_id,
        rule.version if rule else 0,
        database.obj,
        formats,
        remove_characters=rule.remove_characters if rule else "",
        has_accounts=has_accounts,
    )
    if rule:
        compiled.public_stop_message = rule.public_stop_message
        compiled.overpayment = rule.overpayment
    return compiled


def compiled_rule(fund) -> CompiledRule:
    """The compiled rule for a fund (a Fund or its id), from the cache when still current."""
    fund_id = fund if isinstance(fund, int) else fund.id
    entry = _cache.get(fund_id)
    if entry is not None and entry.db is database.obj:
        now = time.monotonic()
        if now - entry.checked_at < CACHE_SECONDS:
            return entry
        if _stored_version(fund_id) == entry.version:
            entry.checked_at = now
            return entry
    entry = _load_rule(fund_id)
    _cache[fund_id] = entry
    return entry


_today_cache: list = [0.0, None]


def _uk_today() -> dt.date:
    now = time.monotonic()
    if now >= _today_cache[0]:
        _today_cache[1] = business_date(utcnow())
        _today_cache[0] = now + 1.0
    return _today_cache[1]


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

_FUND_OK = CheckOutcome("fund", True, "The fund is taking payments", "fund")
_AMOUNT_OK = CheckOutcome("amount", True, "The amount is within the limits", "amount")
_FORMAT_OK_PUBLIC = CheckOutcome("format", True, "The reference is in the right format")
_NO_FORMAT = CheckOutcome("format", True, "Any reference is accepted: this fund has no reference format")
_ACCOUNT_OK = CheckOutcome("account_exists", True, "The account exists")
_NOT_ON_STOP = CheckOutcome("on_stop", True, "The account is not on stop")
_OVERPAYMENT_OK = CheckOutcome("overpayment", True, "The amount is not more than the balance", "amount")
_FUND_CHOICE = "Choose a payment type"


def _fund_failure(message: str, channel: str, reference: str) -> ValidationResult:
    shown = _FUND_CHOICE if channel == "public" else message
    return ValidationResult(False, reference, [CheckOutcome("fund", False, shown, "fund")], channel=channel)


def _amount_failure(fund_data: dict, amount_pence, method) -> str | None:
    if amount_pence.__class__ is not int:  # bool is an int subclass; floats and Decimals skipped parsing
        return "Enter an amount in pounds and pence, like £1,234.50"
    if amount_pence <= 0:
        return "Enter an amount greater than £0"
    minimum = fund_data.get("minimum_pence")
    if minimum and amount_pence < minimum:
        return f"The amount must be {format_pence(minimum)} or more"
    maximum = fund_data.get("maximum_pence")
    if maximum is not None and amount_pence > maximum:
        return f"The amount must be {format_pence(maximum)} or less"
    if method is not None:
        if method.minimum_pence and amount_pence < method.minimum_pence:
            return f"The amount must be {format_pence(method.minimum_pence)} or more for {method.name.lower()}"
        if method.maximum_pence is not None and amount_pence > method.maximum_pence:
            return f"The amount must be {format_pence(method.maximum_pence)} or less for {method.name.lower()}"
    return None


def public_format_message(fund: Fund, example: str = "") -> str:
    """What a citizen sees for any format failure: never which check failed or how."""
    label = _lower_first(fund.reference_label)
    if example:
        return f"Enter your {label}, like {example}"
    return f"Enter your {label} exactly as it is shown on your bill or notice"


def validate_reference(
    fund,
    reference,
    amount_pence: int | None = None,
    *,
    on: dt.date | None = None,
    channel: str = "public",
    method=None,
    stop_override=None,
) -> ValidationResult:
    """Run a fund's whole chain (spec §1) on a reference and, optionally, an amount.

    `fund` is a Fund or its code. `on` is the UK date the payment is for (default today),
    which decides the formats in effect. `channel` is "public" (citizens: one format check
    and messages that never reveal the rule or the account) or "staff" (every check in
    order with specific reasons; imports and the API use it too). `method` adds the method
    of payment's limits. `stop_override` (from `accounts.override_stop`) lets a payment for
    that account on stop through.

    Amount limits always apply, with or without a reference format; the format checks,
    the account-exists check and the on-stop check are cumulative. Within the formats the
    first that passes wins; on the staff channel a failure reports the closest format's
    checks, in order, up to the first that failed.
    """
    if channel == "public":
        public = True
    elif channel == "staff":
        public = False
    else:
        raise ValueError(f"channel must be one of {CHANNELS}")
    if not isinstance(fund, Fund):
        if not isinstance(fund, str):
            return _fund_failure("Choose a fund", channel, "")
        code = fund.strip().upper()
        fund = Fund.get_or_none(Fund.code == code)
        if fund is None:
            return _fund_failure(f"There is no fund with the code {code}", channel, "")
    data = fund.__data__  # plain field values: much cheaper than peewee's descriptors on the hot path
    if not data.get("enabled"):
        return _fund_failure(f"{fund.name} is not taking payments", channel, "")
    if public and not data.get("shown_to_citizens"):
        return _fund_failure(f"{fund.name} cannot be paid online", channel, "")

    fund_id = data.get("id")
    if fund_id is None:
        return _fund_failure("Choose a fund", channel, "")
    rule = _cache.get(fund_id)
    if rule is None or rule.db is not database.obj or time.monotonic() - rule.checked_at >= CACHE_SECONDS:
        rule = compiled_rule(fund_id)

    valid = True
    if amount_pence is None:
        checks = [_FUND_OK]
    else:
        failure = _amount_failure(data, amount_pence, method)
        if failure is None:
            checks = [_FUND_OK, _AMOUNT_OK]
        else:
            checks = [_FUND_OK, CheckOutcome("amount", False, failure, "amount")]
            valid = False

    too_long = False
    if reference.__class__ is not str or len(reference) > MAX_INPUT_LENGTH:
        reference = "" if reference is None else str(reference)[:MAX_INPUT_LENGTH]
        too_long = len(reference) >= MAX_INPUT_LENGTH
    normalised = rule.normalise(reference)
    if not normalised:
        label = _lower_first(fund.reference_label)
        checks.append(CheckOutcome("reference", False, f"Enter {'your' if public else 'the'} {label}"))
        return ValidationResult(False, normalised, checks, None, None, "", [], channel)
    if too_long or len(normalised) > MAX_REFERENCE_LENGTH:
        message = f"{_upper_first(fund.reference_label)} must be {MAX_REFERENCE_LENGTH} characters or fewer"
        checks.append(CheckOutcome("reference", False, message))
        return ValidationResult(False, normalised[:MAX_REFERENCE_LENGTH], checks, None, None, "", [], channel)

    formats = rule.formats
    if formats:
        active = rule.active_formats(on, channel)
        for fmt in active:
            if fmt.passes(normalised):
                break
        else:
            return _format_failure(fund, rule, active, normalised, checks, channel, on)
        if public:
            checks.append(_FORMAT_OK_PUBLIC)
            result = ValidationResult(valid, normalised, checks, None, fmt.id, fmt.label, [], channel)
        else:
            checks.extend(fmt.passed)
            warnings = [fmt.staff_warning] if fmt.staff_warning else []
            result = ValidationResult(valid, normalised, checks, None, fmt.id, fmt.label, warnings, channel)
    else:
        checks.append(_FORMAT_OK_PUBLIC if public else _NO_FORMAT)
        result = ValidationResult(valid, normalised, checks, None, None, "", [], channel)

    if rule.has_accounts or data.get("account_must_exist"):
        _check_account(fund, rule, result, amount_pence, stop_override)
    return result


def _format_failure(fund, rule, active, normalised, checks, channel, on) -> ValidationResult:
    """No format in effect passed: say why in the channel's words."""
    if channel == "public":
        key = (fund.reference_label, active[0].example if active else "")
        outcome = rule.failures.get(key)
        if outcome is None:
            if len(rule.failures) > 16:
                rule.failures.clear()
            outcome = rule.failures[key] = CheckOutcome("format", False, public_format_message(fund, key[1]))
        checks.append(outcome)
        return ValidationResult(False, normalised, checks, None, None, "", [], channel)
    best_index, best_reason, closest = -1, None, None
    for fmt in active:
        index, reason = fmt.run(normalised)
        if reason is None:  # pragma: no cover - passes() and run() agree; kept so a bug fails safe
            reason = "The reference passes the format checks one by one but not together"
        if index > best_index:
            best_index, best_reason, closest = index, reason, fmt
    if closest is None:
        on = on or _uk_today()
        message = f"No reference format for {fund.name} is in effect for payments taken by staff on {on.day} {on:%B %Y}"
        checks.append(CheckOutcome("format", False, message))
        return ValidationResult(False, normalised, checks, None, None, "", [], channel)
    checks.extend(closest.passed[:best_index])
    name = closest.steps[best_index][0] if best_index < len(closest.steps) else "format"
    checks.append(CheckOutcome(name, False, best_reason))
    return ValidationResult(False, normalised, checks, None, None, closest.label, [], channel)


def _check_account(fund: Fund, rule: CompiledRule, result: ValidationResult, amount_pence, stop_override) -> None:
    from app.domain.references.accounts import AccountHolder

    public = result.channel == "public"
    checks = result.checks
    account = AccountHolder.get_or_none((AccountHolder.fund == fund.id) & (AccountHolder.reference == result.reference))
    if account is None:
        if fund.account_must_exist:
            if public:
                message = (
                    f"We cannot find an account with that {_lower_first(fund.reference_label)}. Check it and try again"
                )
            else:
                message = f"There is no {fund.name} account with the reference {result.reference}"
            checks.append(CheckOutcome("account_exists", False, message))
            result.valid = False
        return
    checks.append(_ACCOUNT_OK)
    if not public:
        result.account = account

    stopped = bool(account.on_stop_message) and (account.stop_channels == "all" or public)
    if account.on_stop_message and not stopped:
        checks.append(CheckOutcome("on_stop", True, f"On stop for online payments only: {account.on_stop_message}"))
    elif stopped:
        overridden = (
            stop_override is not None and not public and getattr(stop_override, "account_id", None) == account.id
        )
        if overridden:
            who = stop_override.actor_name or "a senior finance officer"
            checks.append(CheckOutcome("on_stop", True, f"On stop, overridden by {who}: {stop_override.reason}"))
        else:
            message = (rule.public_stop_message or account.on_stop_message) if public else account.on_stop_message
            checks.append(CheckOutcome("on_stop", False, message))
            result.valid = False
            return
    else:
        checks.append(_NOT_ON_STOP)

    # Citizens never learn an account's balance, so the overpayment check is for staff only.
    if public or amount_pence is None or account.balance_pence is None or rule.overpayment == "allow":
        return
    if isinstance(amount_pence, int) and amount_pence > account.balance_pence:
        owed = format_pence(max(account.balance_pence, 0))
        message = f"The amount is more than the {owed} owed on this account"
        if rule.overpayment == "refuse":
            checks.append(CheckOutcome("overpayment", False, message, "amount"))
            result.valid = False
        else:
            checks.append(CheckOutcome("overpayment", True, message, "amount"))
            result.warnings.append(message)
    else:
        checks.append(_OVERPAYMENT_OK)


def try_references(fund, references: Iterable[str], *, on: dt.date | None = None, channel: str = "staff"):
    """The "try a reference" tester with many references pasted in: one result each, in order."""
    return [validate_reference(fund, ref, on=on, channel=channel) for ref in references]


def funds_matching(reference: str, funds: Iterable[Fund], *, on: dt.date | None = None) -> list[Fund]:
    """Funds with a format in effect that `reference` passes (import routing, spec §6).

    Funds with no formats accept anything, so they take no part: a reference that matches
    more than one fund is ambiguous and belongs in suspense with that reason.
    """
    on = on or _uk_today()
    found = []
    for fund in funds:
        rule = compiled_rule(fund)
        if rule.formats and rule.matching_format(rule.normalise(reference), on, "staff") is not None:
            found.append(fund)
    return found


# ---------------------------------------------------------------------------
# Changing rules (administrators): checked on save, audited, versioned
# ---------------------------------------------------------------------------


def rule_settings(fund: Fund) -> ReferenceRule:
    """The fund's settings (unsaved defaults when none are stored yet)."""
    return ReferenceRule.get_or_none(ReferenceRule.fund == fund.id) or ReferenceRule(fund=fund, version=0)


def _ensure_rule(fund_id: int) -> ReferenceRule:
    rule = ReferenceRule.get_or_none(ReferenceRule.fund == fund_id)
    if rule is not None:
        return rule
    try:
        with database.atomic():
            return ReferenceRule.create(fund=fund_id, version=0)
    except IntegrityError:
        return ReferenceRule.get(ReferenceRule.fund == fund_id)


def bump_version(fund_ids: Iterable[int]) -> None:
    """Mark funds' rules as changed: every process recompiles them (this one at once)."""
    ids = sorted(set(fund_ids))
    for fund_id in ids:
        _ensure_rule(fund_id)
    if ids:
        ReferenceRule.update(version=ReferenceRule.version + 1, updated_at=utcnow()).where(
            ReferenceRule.fund.in_(ids)
        ).execute()
    for fund_id in ids:
        _invalidate(fund_id)


def save_rule_settings(
    fund: Fund,
    actor,
    *,
    remove_characters: str | None = None,
    public_stop_message: str | None = None,
    overpayment: str | None = None,
    ip_address: str = "",
) -> ReferenceRule:
    with database.atomic():
        rule = _ensure_rule(fund.id)
        before = rule.as_audit()
        if remove_characters is not None:
            chars = "".join(dict.fromkeys(c for c in remove_characters if not c.isspace()))
            if len(chars) > 20:
                raise DomainError("Enter no more than 20 characters to take out", "remove_characters")
            if any(c.isalnum() for c in chars):
                raise DomainError(
                    "Only symbols can be taken out of references, not letters or digits", "remove_characters"
                )
            rule.remove_characters = chars
        if public_stop_message is not None:
            message = " ".join(public_stop_message.split())
            if len(message) > 500:
                raise DomainError("The message for the public must be 500 characters or fewer", "public_stop_message")
            rule.public_stop_message = message
        if overpayment is not None:
            if overpayment not in OVERPAYMENT:
                raise DomainError("Choose what to do when someone pays more than they owe", "overpayment")
            rule.overpayment = overpayment
        b, a = audit.changes(before, rule.as_audit())
        if not a:
            return rule
        rule.save()
        bump_version([fund.id])
        audit.record(
            "reference_rule.change",
            actor=actor,
            object_type="fund",
            object_id=fund.id,
            summary=f"Changed the reference settings of {fund.code} {fund.name}",
            before=b,
            after=a,
            ip_address=ip_address,
        )
    return ReferenceRule.get_by_id(rule.id)


def _optional_int(value, label: str, field_name: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise DomainError(f"Enter the {label} as a whole number", field_name)
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not re.fullmatch(r"\d{1,3}", text):
            raise DomainError(f"Enter the {label} as a whole number, like 9", field_name)
        number = int(text)
    if not 1 <= number <= MAX_REFERENCE_LENGTH:
        raise DomainError(f"The {label} must be between 1 and {MAX_REFERENCE_LENGTH}", field_name)
    return number


def _optional_date(value, label: str, field_name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise DomainError(f"Enter the {label} as a real date", field_name) from exc


def _lines(text) -> list[str]:
    if not text:
        return []
    if isinstance(text, str):
        return [line.strip() for line in text.splitlines() if line.strip()]
    return [str(line).strip() for line in text if str(line).strip()]


def _resolve_check_config(value) -> CheckDigitConfig | None:
    if value in (None, "", 0):
        return None
    if isinstance(value, CheckDigitConfig):
        return value
    try:
        config_id = int(value)
    except (TypeError, ValueError):
        config_id = None
    config = CheckDigitConfig.get_or_none(CheckDigitConfig.id == config_id) if config_id else None
    if config is None:
        raise DomainError("Choose a check-digit configuration", "check_digit")
    return config


def clean_format(fund: Fund, values: dict) -> tuple[dict, CompiledFormat]:
    """Check a format's values as an administrator entered them; return the cleaned values
    and the compiled format. Raises DomainError (with the field) on the first problem."""
    label = (values.get("label") or "").strip()
    if not label:
        raise DomainError("Enter a name for the format, like “New council tax format”", "label")
    if len(label) > MAX_LABEL_LENGTH:
        raise DomainError(f"The name must be {MAX_LABEL_LENGTH} characters or fewer", "label")
    effective_from = _optional_date(values.get("effective_from"), "date the format starts", "effective_from")
    effective_to = _optional_date(values.get("effective_to"), "date the format ends", "effective_to")
    if effective_from and effective_to and effective_to < effective_from:
        raise DomainError("The date the format ends must be the same as or after the date it starts", "effective_to")
    public = bool(values.get("public", True))
    staff = bool(values.get("staff", True))
    if not public and not staff:
        raise DomainError("Choose who can use the format: the public, staff or both", "public")
    min_length = _optional_int(values.get("min_length"), "shortest length", "min_length")
    max_length = _optional_int(values.get("max_length"), "longest length", "max_length")
    if min_length and max_length and min_length > max_length:
        raise DomainError("The shortest length must be the same as or less than the longest length", "min_length")
    character_type = (values.get("character_type") or "").strip()
    if character_type not in CHARACTER_TYPES:
        raise DomainError("Choose the type of characters the reference can contain", "character_type")
    pattern = (values.get("pattern") or "").strip()
    if pattern:
        compile_pattern(pattern)
    mask = (values.get("mask") or "").strip()
    config = _resolve_check_config(values.get("check_digit"))
    spec = None
    if config is not None:
        if not config.enabled:
            raise DomainError(f"The check-digit configuration {config.name} is switched off", "check_digit")
        spec = spec_from(config)

    cleaned = {
        "label": label,
        "effective_from": effective_from,
        "effective_to": effective_to,
        "public": public,
        "staff": staff,
        "min_length": min_length,
        "max_length": max_length,
        "character_type": character_type,
        "pattern": pattern,
        "mask": mask,
        "check_digit": config.id if config else None,
        "example": "",
        "staff_warning": (values.get("staff_warning") or "").strip(),
        "known_good": "\n".join(_lines(values.get("known_good"))),
        "known_bad": "\n".join(_lines(values.get("known_bad"))),
    }
    if not (min_length or max_length or character_type or pattern or mask or config):
        raise DomainError(
            "Add at least one check: a length, a type of characters, a regular expression, a mask or a check digit",
            "label",
        )

    compiled = compile_format(cleaned, check_config=spec)
    mask_compiled = compiled.mask
    if mask_compiled is not None:
        n = mask_compiled.length
        if (min_length and n < min_length) or (max_length and n > max_length):
            raise DomainError(
                f"The mask has {n} characters, outside the length range: no reference could pass both", "mask"
            )
        if character_type:
            allowed = set(_CHARACTER_SETS[character_type])
            for index, position in enumerate(mask_compiled.positions, start=1):
                if not (position.allowed & allowed):
                    raise DomainError(
                        f"Character {index} of the mask can never be {CHARACTER_TYPES[character_type].lower()}: "
                        "no reference could pass both",
                        "mask",
                    )
        if mask_compiled.check_index is not None and spec is None:
            raise DomainError("The mask has a check character (@): choose a check-digit configuration", "check_digit")
    if spec is not None:
        longest = mask_compiled.length if mask_compiled else max_length
        if not longest:
            raise DomainError(
                "Set the longest length or a mask, so the check-digit weights can be checked against it", "max_length"
            )
        check_index = mask_compiled.check_index if mask_compiled else None
        if spec.algorithm != "weighted_sum" and check_index is not None and check_index != longest - 1:
            raise DomainError(
                f"The {config.algorithm_name} check character is always the last one: put @ at the end of the mask",
                "mask",
            )
        needed = weights_needed(spec, longest, check_index)
        if len(spec.weights) < needed:
            raise DomainError(
                f"{config.name} has {len(spec.weights)} weights, but references in this format can be {longest} "
                f"characters long, so it needs at least {needed}",
                "check_digit",
            )
        fixed_check = check_index if check_index is not None else (longest - 1 if min_length == longest else None)
        if (
            spec.algorithm == "weighted_sum"
            and fixed_check is not None
            and fixed_check < len(spec.weights)
            and spec.weights[fixed_check] != 0
        ):
            raise DomainError(
                f"{config.name} gives a weight of {spec.weights[fixed_check]} to the check character "
                f"(character {fixed_check + 1}): its weight must be 0",
                "check_digit",
            )

    rule = ReferenceRule.get_or_none(ReferenceRule.fund == fund.id)
    normalise = _normaliser(_remove_table(rule.remove_characters if rule else ""))
    example = normalise(values.get("example") or "")
    if not example:
        raise DomainError("Enter an example of a reference in this format, like the one on a bill", "example")
    failure = compiled.run(example)[1]
    if failure is not None:
        raise DomainError(f"The example {example} does not pass this format: {failure}", "example")
    cleaned["example"] = example
    compiled.example = example
    for good in _lines(values.get("known_good")):
        failure = compiled.run(normalise(good))[1]
        if failure is not None:
            raise DomainError(f"{good} is listed as a good reference but fails: {failure}", "known_good")
    for bad in _lines(values.get("known_bad")):
        if compiled.passes(normalise(bad)):
            raise DomainError(f"{bad} is listed as a bad reference but passes this format", "known_bad")
    return cleaned, compiled


def add_format(fund: Fund, actor, values: dict, *, ip_address: str = "") -> ReferenceFormat:
    cleaned, _compiled = clean_format(fund, values)
    with database.atomic():
        last = (
            ReferenceFormat.select(ReferenceFormat.position)
            .where(ReferenceFormat.fund == fund.id)
            .order_by(ReferenceFormat.position.desc())
            .first()
        )
        fmt = ReferenceFormat.create(fund=fund.id, position=(last.position + 1) if last else 1, **cleaned)
        bump_version([fund.id])
        audit.record(
            "reference_format.create",
            actor=actor,
            object_type="reference_format",
            object_id=fmt.id,
            summary=f"Added the reference format “{fmt.label}” to {fund.code} {fund.name}",
            after=fmt.as_audit(),
            ip_address=ip_address,
        )
    return fmt


def change_format(fmt: ReferenceFormat, actor, values: dict, *, ip_address: str = "") -> ReferenceFormat:
    fund = Fund.get_by_id(fmt.fund_id)
    merged = {name: getattr(fmt, name) for name in ReferenceFormat.audit_fields if name != "check_digit"}
    merged["check_digit"] = fmt.check_digit_id
    merged.update(values)
    cleaned, _compiled = clean_format(fund, merged)
    before = fmt.as_audit()
    for name, value in cleaned.items():
        setattr(fmt, name if name != "check_digit" else "check_digit_id", value)
    b, a = audit.changes(before, fmt.as_audit())
    if not a:
        return fmt
    with database.atomic():
        fmt.updated_at = utcnow()
        fmt.save()
        bump_version([fund.id])
        audit.record(
            "reference_format.change",
            actor=actor,
            object_type="reference_format",
            object_id=fmt.id,
            summary=f"Changed the reference format “{fmt.label}” of {fund.code} {fund.name}",
            before=b,
            after=a,
            ip_address=ip_address,
        )
    return fmt


def remove_format(fmt: ReferenceFormat, actor, *, ip_address: str = "") -> None:
    fund = Fund.get_by_id(fmt.fund_id)
    with database.atomic():
        before = fmt.as_audit()
        fmt.delete_instance()
        bump_version([fund.id])
        audit.record(
            "reference_format.remove",
            actor=actor,
            object_type="reference_format",
            object_id=fmt.id,
            summary=f"Removed the reference format “{fmt.label}” from {fund.code} {fund.name}",
            before=before,
            ip_address=ip_address,
        )


def move_format(fmt: ReferenceFormat, actor, direction: str, *, ip_address: str = "") -> None:
    """Move a format one place "up" (tried earlier) or "down" (tried later)."""
    if direction not in ("up", "down"):
        raise ValueError("direction must be up or down")
    fund = Fund.get_by_id(fmt.fund_id)
    with database.atomic():
        formats = list(
            ReferenceFormat.select()
            .where(ReferenceFormat.fund == fund.id)
            .order_by(ReferenceFormat.position, ReferenceFormat.id)
        )
        index = next(i for i, f in enumerate(formats) if f.id == fmt.id)
        other = index - 1 if direction == "up" else index + 1
        if not 0 <= other < len(formats):
            return
        formats[index], formats[other] = formats[other], formats[index]
        before = [f.label for f in sorted(formats, key=lambda f: f.position)]
        for position, item in enumerate(formats, start=1):
            if item.position != position:
                ReferenceFormat.update(position=position).where(ReferenceFormat.id == item.id).execute()
        bump_version([fund.id])
        audit.record(
            "reference_format.move",
            actor=actor,
            object_type="fund",
            object_id=fund.id,
            summary=f"Changed the order of the reference formats of {fund.code} {fund.name}",
            before={"order": before},
            after={"order": [f.label for f in formats]},
            ip_address=ip_address,
        )


def formats_of(fund: Fund):
    return (
        ReferenceFormat.select(ReferenceFormat, CheckDigitConfig)
        .join(CheckDigitConfig, JOIN.LEFT_OUTER)
        .where(ReferenceFormat.fund == fund.id)
        .order_by(ReferenceFormat.position, ReferenceFormat.id)
    )


# ---------------------------------------------------------------------------
# Check-digit configurations: saved through here so they are checked and rules recompile
# ---------------------------------------------------------------------------


def create_check_digit_config(actor, values: dict, *, ip_address: str = "") -> CheckDigitConfig:
    from app.domain.configuration import create_config
    from app.domain.references.checkdigits import validate_config

    spec = validate_config(values)
    data = {k: v for k, v in values.items() if k in ("code", "name", "enabled", "description")}
    data.update(spec.as_storage())
    if not (data.get("name") or "").strip():
        raise DomainError("Enter a name for the check-digit configuration", "name")
    return create_config(CheckDigitConfig, actor, data, ip_address=ip_address)


def change_check_digit_config(
    config: CheckDigitConfig, actor, values: dict, *, ip_address: str = ""
) -> CheckDigitConfig:
    """Change a configuration. Refused if a format using it would stop making sense, or if it
    would be switched off while formats use it."""
    from app.domain.configuration import change_config
    from app.domain.references.checkdigits import validate_config

    merged = {name: getattr(config, name) for name in CheckDigitConfig.audit_fields}
    merged.update(values)
    spec = validate_config(merged)
    data = {k: merged[k] for k in ("name", "enabled", "description") if k in merged}
    data.update(spec.as_storage())
    users = list(ReferenceFormat.select().where(ReferenceFormat.check_digit == config.id))
    if not data.get("enabled", True) and users:
        raise DomainError(
            f"{config.name} is used by {len(users)} reference format{'s' if len(users) != 1 else ''}: "
            "choose another check for them first",
            "enabled",
        )
    with database.atomic():
        trial = CheckDigitConfig(**{**config.__data__, **data})
        for fmt in users:
            fund = Fund.get_by_id(fmt.fund_id)
            values_now = {name: getattr(fmt, name) for name in ReferenceFormat.audit_fields if name != "check_digit"}
            values_now["check_digit"] = trial
            try:
                clean_format(fund, values_now)
            except DomainError as exc:
                raise DomainError(
                    f"This change would break the format “{fmt.label}” of {fund.name}: {exc.message}", exc.field
                ) from exc
        item = change_config(config, actor, data, ip_address=ip_address)
        bump_version([fmt.fund_id for fmt in users])
    return item
