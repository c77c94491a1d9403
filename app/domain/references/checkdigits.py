"""Check-digit configurations: data that finance edits, compiled once into fast pure functions.

Three algorithms (spec/reference-validation.md §3):

- ``weighted_sum``: S = Σ digitᵢ × wᵢ (after an optional prefix substitution such as
  ``BJ``→``05``); r = S mod m, or m − (S mod m) when subtracting; the check character is
  the result substitution of r (e.g. 10→``A``) or r written as one digit.
- ``luhn``: mod 10 "double-add-double" over the digits of the reference; the check
  digit is the last character. Modulus, weights and substitutions are not used.
- ``library_card``: the "Dynix" scheme kept for configurations migrated from LocalGov
  IMS. Subtraction always applies; prefix substitution is not used; the check character
  is always the last one.

Configurations are checked when saved (`validate_config`): a configuration that would
make a fund silently unpayable (no rule for a result of 10, weights that are all zero …)
is refused with a message that says what to change.

Where the check character sits is decided by the reference format (the mask's ``@``,
or the last character when there is no mask), so `compile_check` takes it as an argument.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from peewee import BooleanField, CharField, IntegerField, TextField

from app.domain.configuration import ConfigModel
from app.domain.errors import DomainError

ALGORITHMS: dict[str, str] = {
    "weighted_sum": "Weighted sum (modulus)",
    "luhn": "Luhn (modulus 10, double-add-double)",
    "library_card": "Library card (Dynix scheme)",
}

MAX_WEIGHTS = 40  # the longest reference anywhere in the service
MAX_WEIGHT = 99
MIN_MODULUS = 2
MAX_MODULUS = 99
CHECK_CHARACTERS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
NEVER_ISSUED_WORDS = frozenset({"", "NEVER", "NONE", "-", "NEVER ISSUED"})

_DIGITS = frozenset("0123456789")
# bytes.translate tables: every byte that is not an ASCII digit becomes "0" (contributes nothing).
_NON_DIGIT_TO_ZERO = bytes(b if 48 <= b <= 57 else 48 for b in range(256))
_NON_DIGIT_BYTES = bytes(b for b in range(256) if not 48 <= b <= 57)
# Luhn: the doubled digit with 9 taken off when over 9, indexed by the ASCII byte.
_LUHN_DOUBLE = [0] * 48 + [(2 * d) - 9 if d > 4 else 2 * d for d in range(10)] + [0] * (256 - 58)


class CheckDigitConfig(ConfigModel):
    algorithm = CharField(max_length=20, default="weighted_sum")
    modulus = IntegerField(default=10)
    weights = CharField(max_length=200, default="")  # "3,7,1,3,7,1,3,7,0"
    subtract_from_modulus = BooleanField(default=False)
    # JSON object, leading characters -> digits, e.g. {"BJ": "05"}; "?" in a key matches any character.
    prefix_substitutions = TextField(default="{}")
    # JSON object, result -> check character, e.g. {"10": "A"}; null means "never issued".
    result_substitutions = TextField(default="{}")
    description = TextField(default="")  # notes for administrators; never shown to the public

    audit_type = "check_digit"
    audit_fields = (
        "code",
        "name",
        "enabled",
        "algorithm",
        "modulus",
        "weights",
        "subtract_from_modulus",
        "prefix_substitutions",
        "result_substitutions",
        "description",
    )

    @property
    def algorithm_name(self) -> str:
        return ALGORITHMS.get(self.algorithm, self.algorithm)

    def spec(self) -> CheckDigitSpec:
        return spec_from(self)


# ---------------------------------------------------------------------------
# The parsed, validated form of a configuration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckDigitSpec:
    """A configuration that has passed `validate_config`: plain values, no database."""

    algorithm: str
    modulus: int = 10
    weights: tuple[int, ...] = ()
    subtract_from_modulus: bool = False
    # (leading characters, replacement digits), longest first; "?" matches any character.
    prefix_substitutions: tuple[tuple[str, str], ...] = ()
    # result -> check character, or None when no reference is ever issued with that result.
    result_substitutions: tuple[tuple[int, str | None], ...] = ()

    @property
    def subtracts(self) -> bool:
        return self.algorithm == "library_card" or (self.algorithm == "weighted_sum" and self.subtract_from_modulus)

    def possible_results(self) -> range:
        if self.algorithm == "luhn":
            return range(10)
        return range(1, self.modulus + 1) if self.subtracts else range(self.modulus)

    def result_table(self) -> dict[int, str | None]:
        """Every possible result and the check character it gives (None: never valid)."""
        if self.algorithm == "luhn":
            return {r: str(r) for r in range(10)}
        subs = dict(self.result_substitutions)
        table: dict[int, str | None] = {}
        for r in self.possible_results():
            text = subs[r] if r in subs else str(r)
            table[r] = text if text is not None and len(text) == 1 else None
        return table

    def check_characters(self) -> frozenset[str]:
        """The characters that can appear in the check position."""
        return frozenset(c for c in self.result_table().values() if c is not None)

    def as_storage(self) -> dict:
        """Model field values for this spec (text columns hold canonical JSON)."""
        return {
            "algorithm": self.algorithm,
            "modulus": self.modulus,
            "weights": format_weights(self.weights),
            "subtract_from_modulus": self.subtract_from_modulus,
            "prefix_substitutions": json.dumps(dict(self.prefix_substitutions), sort_keys=True),
            "result_substitutions": json.dumps({str(k): v for k, v in self.result_substitutions}, sort_keys=True),
        }


@dataclass(frozen=True)
class CheckResult:
    valid: bool
    expected: str | None  # the check character the rest of the reference gives (None: none can be valid)
    found: str | None  # the character in the check position
    reason: str = ""  # for staff and administrators, when not valid; never shown to the public


# ---------------------------------------------------------------------------
# Parsing what administrators type
# ---------------------------------------------------------------------------


def parse_weights(value) -> tuple[int, ...]:
    """ "3,7,1", "3-7-1", "3 7 1" or a sequence of ints -> (3, 7, 1)."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,;\-]+", value.strip()) if p]
    else:
        parts = list(value)
    weights = []
    for part in parts:
        if isinstance(part, bool):
            raise DomainError("Weights must be whole numbers, like 3,7,1", "weights")
        if isinstance(part, int):
            weights.append(part)
            continue
        text = str(part).strip()
        if not re.fullmatch(r"\d{1,3}", text):
            raise DomainError("Weights must be whole numbers separated by commas, like 3,7,1,3,7,1,3,7,0", "weights")
        weights.append(int(text))
    return tuple(weights)


def format_weights(weights) -> str:
    return ",".join(str(w) for w in weights)


def _pairs(value, field: str, example: str) -> list[tuple[str, str]]:
    """A mapping, JSON object text, or "A=B, C=D" / "A→B" lines -> [(A, B), (C, D)]."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(str(k), "" if v is None else str(v)) for k, v in value.items()]
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DomainError(f"Enter the substitutions like {example}", field) from exc
        if not isinstance(data, dict):
            raise DomainError(f"Enter the substitutions like {example}", field)
        return [(str(k), "" if v is None else str(v)) for k, v in data.items()]
    pairs = []
    for item in re.split(r"[,;\n]+", text):
        item = item.strip()
        if not item:
            continue
        parts = re.split(r"\s*(?:=|→|->|:)\s*", item, maxsplit=1)
        if len(parts) != 2:
            raise DomainError(f"Enter the substitutions like {example}", field)
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def parse_result_substitutions(value) -> dict[int, str | None]:
    """{"10": "A"}, "10=A, 11=0" or "10=never" -> {10: "A", 11: "0"} / {10: None}."""
    result: dict[int, str | None] = {}
    for key, target in _pairs(value, "result_substitutions", "10=A, 11=0 (or 10=never)"):
        if not re.fullmatch(r"\d{1,3}", key):
            raise DomainError(
                f"Each result substitution must start with a result number, like 10=A (not “{key}”)",
                "result_substitutions",
            )
        number = int(key)
        if number in result:
            raise DomainError(f"There are two substitutions for result {number}", "result_substitutions")
        word = target.strip().upper()
        if word in NEVER_ISSUED_WORDS:
            result[number] = None
        elif len(word) == 1 and word in CHECK_CHARACTERS:
            result[number] = word
        else:
            raise DomainError(
                f"Result {number} must become one letter or digit, or “never” (not “{target}”)",
                "result_substitutions",
            )
    return result


def parse_prefix_substitutions(value) -> dict[str, str]:
    """{"BJ": "05"} or "BJ=05, ??=98" -> {"BJ": "05", "??": "98"}."""
    result: dict[str, str] = {}
    for key, target in _pairs(value, "prefix_substitutions", "BJ=05"):
        prefix = key.strip().upper()
        digits = target.strip()
        if not prefix or not re.fullmatch(r"[A-Z0-9?]{1,10}", prefix):
            raise DomainError(
                f"A prefix must be 1 to 10 letters or digits, or ? for any character (not “{key}”)",
                "prefix_substitutions",
            )
        if not re.fullmatch(r"\d{1,10}", digits):
            raise DomainError(
                f"The prefix {prefix} must be replaced by digits, like {prefix}={'0' * len(prefix)}",
                "prefix_substitutions",
            )
        if len(digits) != len(prefix):
            raise DomainError(
                f"The prefix {prefix} and its replacement {digits} must be the same length, "
                "so the weights still line up",
                "prefix_substitutions",
            )
        if prefix in result:
            raise DomainError(f"There are two substitutions for the prefix {prefix}", "prefix_substitutions")
        result[prefix] = digits
    return result


def format_result_substitutions(subs: Mapping[int, str | None] | str) -> str:
    """For showing and editing: {10: "A", 11: None} -> "10=A, 11=never"."""
    if isinstance(subs, str):
        subs = parse_result_substitutions(subs)
    return ", ".join(f"{k}={'never' if v is None else v}" for k, v in sorted(subs.items()))


def format_prefix_substitutions(subs: Mapping[str, str] | str) -> str:
    if isinstance(subs, str):
        subs = parse_prefix_substitutions(subs)
    return ", ".join(f"{k}={v}" for k, v in subs.items())


def _value(config, name: str, default=None):
    if isinstance(config, Mapping):
        return config.get(name, default)
    return getattr(config, name, default)


def _int(value, label: str, field: str) -> int:
    if isinstance(value, bool):
        raise DomainError(f"Enter the {label} as a whole number", field)
    if isinstance(value, int):
        return value
    text = str(value if value is not None else "").strip()
    if not re.fullmatch(r"-?\d{1,4}", text):
        raise DomainError(f"Enter the {label} as a whole number, like 11", field)
    return int(text)


def _bool(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "y", "on"}
    return bool(value)


# ---------------------------------------------------------------------------
# Validation on save
# ---------------------------------------------------------------------------


def validate_config(config) -> CheckDigitSpec:
    """Parse and check a configuration (a CheckDigitConfig, a dict of form values or a spec).

    Raises DomainError naming the field when the parameters are inconsistent; returns
    the spec that `compile_check` uses. Parameters an algorithm does not use are dropped.
    """
    if isinstance(config, CheckDigitSpec):
        config = {
            "algorithm": config.algorithm,
            "modulus": config.modulus,
            "weights": config.weights,
            "subtract_from_modulus": config.subtract_from_modulus,
            "prefix_substitutions": dict(config.prefix_substitutions),
            "result_substitutions": {str(k): v for k, v in config.result_substitutions},
        }
    algorithm = str(_value(config, "algorithm", "") or "").strip()
    if algorithm not in ALGORITHMS:
        raise DomainError("Choose a check-digit algorithm", "algorithm")
    if algorithm == "luhn":
        # Luhn is fully defined: modulus 10, doubling, no substitutions.
        return CheckDigitSpec(algorithm="luhn", modulus=10)

    modulus = _int(_value(config, "modulus", 10), "modulus", "modulus")
    if modulus < MIN_MODULUS:
        raise DomainError(f"The modulus must be {MIN_MODULUS} or more", "modulus")
    if modulus > MAX_MODULUS:
        raise DomainError(f"The modulus must be {MAX_MODULUS} or less", "modulus")

    weights = parse_weights(_value(config, "weights", ""))
    if not weights:
        raise DomainError(
            "Enter the weights, one for each character of the reference, like 3,7,1,3,7,1,3,7,0", "weights"
        )
    if len(weights) > MAX_WEIGHTS:
        raise DomainError(f"Enter no more than {MAX_WEIGHTS} weights (the longest reference allowed)", "weights")
    if any(w < 0 or w > MAX_WEIGHT for w in weights):
        raise DomainError(f"Each weight must be between 0 and {MAX_WEIGHT}", "weights")
    if algorithm == "library_card":
        if not any(weights[i] for i in range(0, len(weights), 2)):
            raise DomainError(
                "The library card scheme multiplies the 1st, 3rd, 5th … digits by their weights: "
                "at least one of those weights must be more than 0",
                "weights",
            )
    elif not any(w % modulus for w in weights):
        raise DomainError(
            f"Every weight is 0 or a multiple of the modulus {modulus}, so every reference would get the same "
            "check digit: use weights that are not multiples of the modulus",
            "weights",
        )

    prefixes = parse_prefix_substitutions(_value(config, "prefix_substitutions", None))
    if prefixes and algorithm == "library_card":
        raise DomainError(
            "The library card scheme does not use prefix substitutions: remove them", "prefix_substitutions"
        )

    subtract = True if algorithm == "library_card" else _bool(_value(config, "subtract_from_modulus", False))
    results = parse_result_substitutions(_value(config, "result_substitutions", None))
    possible = range(1, modulus + 1) if subtract else range(modulus)
    for number in sorted(results):
        if number not in possible:
            how = f"from 1 to {modulus}" if subtract else f"from 0 to {modulus - 1}"
            raise DomainError(
                f"A result of {number} can never happen: with modulus {modulus}"
                f"{' and subtraction' if subtract else ''} results run {how}",
                "result_substitutions",
            )
    if subtract and modulus not in results:
        raise DomainError(
            f"Subtracting from the modulus can give {modulus}: add a substitution for it, "
            f"like {modulus}=0 (or {modulus}=never if no reference is issued with it)",
            "result_substitutions",
        )
    for number in possible:
        if number >= 10 and number not in results:
            raise DomainError(
                f"A result of {number} is two digits and cannot be a check character: add a substitution, "
                f"like {number}=A or {number}=0 (or {number}=never if no reference is issued with it)",
                "result_substitutions",
            )
    if all(results.get(n, "") is None for n in possible):
        raise DomainError(
            "Every result is marked “never issued”, so no reference could be valid", "result_substitutions"
        )

    return CheckDigitSpec(
        algorithm=algorithm,
        modulus=modulus,
        weights=weights,
        subtract_from_modulus=subtract if algorithm == "weighted_sum" else False,
        prefix_substitutions=tuple(sorted(prefixes.items(), key=lambda kv: (-len(kv[0]), kv[0]))),
        result_substitutions=tuple(sorted(results.items())),
    )


def spec_from(config) -> CheckDigitSpec:
    """The spec of a saved configuration (validated again: stored data is not trusted blindly)."""
    return validate_config(config)


def weights_needed(spec: CheckDigitSpec, longest: int, check_position: int | None) -> int:
    """How many weights a reference of up to `longest` characters needs (0 for Luhn).

    The check position's weight is never used, so a trailing weight for a last-character
    check may be left off (spec example B).
    """
    if spec.algorithm == "luhn" or longest <= 0:
        return 0
    if spec.algorithm == "library_card":
        payload = longest - 1
        even = [i for i in range(payload) if i % 2 == 0]
        return (even[-1] + 1) if even else 0
    if check_position is None or check_position == longest - 1:
        return longest - 1
    return longest


# ---------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------


def compile_check(config, *, check_position: int | None = None) -> Callable[[str], CheckResult]:
    """A function reference -> CheckResult for this configuration.

    `reference` is already normalised (upper case, no spaces). `check_position` is the
    0-based index of the check character (a mask's ``@``); None means the last character.
    Luhn and the library card scheme always use the last character.
    """
    spec = config if isinstance(config, CheckDigitSpec) else validate_config(config)
    if spec.algorithm == "luhn":
        return _compile_luhn()
    table = spec.result_table()
    if spec.algorithm == "library_card":
        return _compile_library_card(spec, table)
    return _compile_weighted_sum(spec, table, check_position)


def compile_fast_check(config, *, check_position: int | None = None) -> Callable[[str], bool]:
    """Like `compile_check`, but answers only valid or not: what validation runs first."""
    check = compile_check(config, check_position=check_position)
    fast = getattr(check, "passes", None)
    if fast is not None:
        return fast
    return lambda reference: check(reference).valid


_VALID: dict[str, CheckResult] = {c: CheckResult(True, c, c) for c in CHECK_CHARACTERS}


_WRONG: dict[tuple[str | None, str | None], CheckResult] = {}


def _wrong(expected: str | None, found: str | None) -> CheckResult:
    result = _WRONG.get((expected, found))
    if result is None:
        result = _make_wrong(expected, found)
        if len(_WRONG) < 5000:  # found is whatever was typed: keep the cache bounded
            _WRONG[(expected, found)] = result
    return result


def _make_wrong(expected: str | None, found: str | None) -> CheckResult:
    if expected is None:
        reason = (
            "The reference cannot be genuine: no reference is issued with this combination of characters. "
            "It has probably been mistyped"
        )
    else:
        reason = "The check character does not match the rest of the reference: it has probably been mistyped"
    return CheckResult(False, expected, found, reason)


def _too_short(found: str | None = None) -> CheckResult:
    return CheckResult(False, None, found, "The reference is too short to have a check character")


def _not_covered(length: int, weights: int) -> CheckResult:
    return CheckResult(
        False,
        None,
        None,
        f"The check-digit configuration has {weights} weights, too few for a reference of {length} characters",
    )


def _compile_weighted_sum(spec: CheckDigitSpec, table: dict[int, str | None], check_position: int | None):
    modulus = spec.modulus
    subtract = spec.subtract_from_modulus
    weights = spec.weights
    expected_by_result = [table.get(r) for r in range(modulus + 1)]
    literal_prefixes = [(p, r) for p, r in spec.prefix_substitutions if "?" not in p]
    wildcard_prefixes = [(p, r) for p, r in spec.prefix_substitutions if "?" in p]
    mul = operator.mul
    # Per reference length: (weights with the check position's weight zeroed, 48 × Σ weights)
    # so the sum over the ASCII bytes can be corrected for "0" being byte 48.
    vectors: dict[int, tuple[tuple[int, ...], int, int] | None] = {}

    def vector(length: int):
        pos = length - 1 if check_position is None else check_position
        if pos >= length or pos < 0:
            return None
        needed = length - 1 if pos == length - 1 else length
        if len(weights) < needed:
            return False
        vec = list(weights[:length]) + [0] * (length - len(weights[:length]))
        vec[pos] = 0
        entry = (tuple(vec), 48 * sum(vec), pos)
        vectors[length] = entry
        return entry

    def substitute(reference: str) -> str:
        for prefix, digits in literal_prefixes:
            if reference.startswith(prefix):
                return digits + reference[len(prefix) :]
        for prefix, digits in wildcard_prefixes:
            n = len(prefix)
            if len(reference) >= n and all(p == "?" or p == c for p, c in zip(prefix, reference, strict=False)):
                return digits + reference[n:]
        return reference

    def check(reference: str) -> CheckResult:
        length = len(reference)
        entry = vectors.get(length) or vector(length)
        if entry is None:
            return _too_short()
        if entry is False:
            return _not_covered(length, len(weights))
        vec, base, pos = entry
        found = reference[pos]
        if literal_prefixes or wildcard_prefixes:
            reference = substitute(reference)
        data = reference.encode("ascii", "replace").translate(_NON_DIGIT_TO_ZERO)
        total = sum(map(mul, data, vec)) - base
        r = total % modulus
        if subtract:
            r = modulus - r
        expected = expected_by_result[r]
        if expected == found:
            return _VALID[found]
        return _wrong(expected, found)

    def passes(reference: str) -> bool:
        # The hot path: the same arithmetic, no result object.
        if len(reference) == fixed_length:
            r = (
                sum(map(mul, reference.encode("ascii", "replace").translate(table_), fixed_vec)) - fixed_base
            ) % modulus
            if subtract:
                r = modulus - r
            return expected_by_result[r] == reference[fixed_pos]
        entry = vectors.get(len(reference))
        if not entry:
            return check(reference).valid
        vec, base, pos = entry
        data = substitute(reference) if substitutes else reference
        r = (sum(map(mul, data.encode("ascii", "replace").translate(_NON_DIGIT_TO_ZERO), vec)) - base) % modulus
        if subtract:
            r = modulus - r
        return expected_by_result[r] == reference[pos]

    substitutes = bool(literal_prefixes or wildcard_prefixes)
    table_ = _NON_DIGIT_TO_ZERO
    # Without prefix substitution, the length the check position implies (e.g. from a mask)
    # gets a path with no lookups at all.
    fixed_length, fixed_vec, fixed_base, fixed_pos = -1, (), 0, 0
    if check_position is not None and not substitutes:
        entry = vector(check_position + 1)
        if entry:
            fixed_length = check_position + 1
            fixed_vec, fixed_base, fixed_pos = entry
    check.passes = passes
    return check


def _compile_luhn():
    def check(reference: str) -> CheckResult:
        if not reference:
            return _too_short()
        found = reference[-1]
        digits = reference[:-1].encode("ascii", "replace").translate(None, _NON_DIGIT_BYTES)
        doubled = digits[::-1][::2]  # the rightmost payload digit, then every second one leftwards
        kept = digits[::-1][1::2]
        total = sum(map(_LUHN_DOUBLE.__getitem__, doubled)) + sum(kept) - 48 * len(kept)
        expected = str((10 - total % 10) % 10)
        if expected == found:
            return _VALID[found]
        return _wrong(expected, found)

    return check


def _compile_library_card(spec: CheckDigitSpec, table: dict[int, str | None]):
    modulus = spec.modulus
    weights = spec.weights
    expected_by_result = [table.get(r) for r in range(modulus + 1)]
    # contribution[i][d]: what digit d adds at payload index i (spec §3.3 step 2).
    contribution: list[list[int]] = []
    for i in range(MAX_WEIGHTS):
        row = []
        for d in range(10):
            if i % 2:
                row.append(d)
                continue
            if i >= len(weights):
                row = None
                break
            v = d * weights[i]
            if v > 10:
                v -= 10
            if d > 4:
                v += 1
            row.append(v)
        contribution.append(row)

    def check(reference: str) -> CheckResult:
        if len(reference) < 2:
            return _too_short(reference[-1:] or None)
        found = reference[-1]
        total = 0
        for i, ch in enumerate(reference[:-1]):
            if ch in _DIGITS:
                row = contribution[i] if i < MAX_WEIGHTS else None
                if row is None:
                    return _not_covered(len(reference), len(weights))
                total += row[ord(ch) - 48]
        expected = expected_by_result[modulus - total % modulus]
        if expected == found:
            return _VALID[found]
        return _wrong(expected, found)

    return check


def check_character_for(config, payload: str, *, check_position: int | None = None) -> str | None:
    """The check character that completes `payload` (the reference with its check position
    left out: appended at the end, or inserted at `check_position`). None when no reference
    can be valid with these characters (a "never issued" result).

    Used to generate demo and test references; validation never needs it.
    """
    check = compile_check(config, check_position=check_position)
    pos = len(payload) if check_position is None else check_position
    trial = payload[:pos] + "0" + payload[pos:]
    result = check(trial)
    return result.expected
