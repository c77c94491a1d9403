"""The mask language (spec/reference-validation.md §2), compiled once into a fast matcher.

| Symbol | Matches                                                      |
|--------|--------------------------------------------------------------|
| ``#``  | a digit 0–9                                                  |
| ``$``  | a letter A–Z                                                 |
| ``?``  | a letter or a digit                                          |
| ``*``  | a letter, a digit, a space, ``/`` or ``-``                   |
| ``@``  | the check character: a digit, or a letter a result substitution produces |
| ``\\x`` | the character ``x`` itself (so a mask can contain a literal ``#`` or ``@``) |
| other  | itself                                                       |

References are upper-cased before matching, and everything is ASCII: ``É`` is not a
letter here. A reference matches only if it has exactly as many characters as the mask
has positions. The happy path is one precompiled regular expression (fixed length, no
repetition, so it cannot backtrack); the first failing position is worked out only when
a reference fails, to say what is wrong in plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.errors import DomainError

MAX_MASK_POSITIONS = 40  # the longest reference anywhere in the service

DIGITS = "0123456789"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
FREE_TEXT = LETTERS + DIGITS + " /-"

SYMBOLS: dict[str, tuple[str, str]] = {
    # symbol: (characters matched, words for one position)
    "#": (DIGITS, "a digit (0 to 9)"),
    "$": (LETTERS, "a letter (A to Z)"),
    "?": (LETTERS + DIGITS, "a letter or a digit"),
    "*": (FREE_TEXT, "a letter, a digit, a space, / or -"),
}
_PLURAL = {
    "#": ("digit", "digits"),
    "$": ("letter", "letters"),
    "?": ("letter or digit", "letters or digits"),
    "*": ("letter, digit, space, / or -", "letters, digits, spaces, / or -"),
    "@": ("check character", "check characters"),
}


@dataclass(frozen=True)
class MaskPosition:
    symbol: str  # "#", "$", "?", "*", "@", or "" for a literal
    allowed: frozenset[str]
    literal: str = ""

    def describe(self) -> str:
        if self.symbol == "@":
            return "the check character"
        if self.symbol:
            return SYMBOLS[self.symbol][1]
        return f"“{self.literal}”"


@dataclass(frozen=True)
class MaskFailure:
    position: int | None  # 1-based position of the first wrong character; None for a wrong length
    message: str  # plain words, for staff and administrators


@dataclass(frozen=True)
class CompiledMask:
    mask: str
    positions: tuple[MaskPosition, ...]
    check_index: int | None  # 0-based position of "@", if any
    _pattern: re.Pattern

    @property
    def length(self) -> int:
        return len(self.positions)

    def matches(self, reference: str) -> bool:
        return self._pattern.fullmatch(reference) is not None

    def check(self, reference: str) -> MaskFailure | None:
        """None when `reference` fits the mask, else where and why it does not."""
        if self._pattern.fullmatch(reference) is not None:
            return None
        return self.explain(reference)

    def explain(self, reference: str) -> MaskFailure | None:
        if len(reference) != len(self.positions):
            return MaskFailure(None, _length_message(len(self.positions), len(reference)))
        for index, (position, char) in enumerate(zip(self.positions, reference, strict=True), start=1):
            if char not in position.allowed:
                shown = "a space" if char == " " else f"“{char}”"
                return MaskFailure(index, f"Character {index} must be {position.describe()}, not {shown}")
        return None

    def describe(self) -> str:
        """The mask in words for administrators, e.g. "BJ, then 7 digits, then a check character"."""
        return describe_positions(self.positions)


def _length_message(expected: int, actual: int) -> str:
    return f"The reference must be {expected} characters long (it has {actual})"


def parse_mask(mask: str, *, check_characters: str = DIGITS) -> tuple[MaskPosition, ...]:
    """Split a mask into positions. Raises DomainError for a mask that cannot be used."""
    if not isinstance(mask, str) or not mask:
        raise DomainError("Enter a mask, like BJ#######@", "mask")
    positions: list[MaskPosition] = []
    i = 0
    while i < len(mask):
        char = mask[i]
        if char == "\\":
            if i + 1 >= len(mask):
                raise DomainError("The mask ends with \\ : put the character it stands for after it, like \\#", "mask")
            literal = mask[i + 1].upper()
            _refuse_space(literal)
            positions.append(MaskPosition("", frozenset(literal), literal))
            i += 2
            continue
        if char in SYMBOLS:
            positions.append(MaskPosition(char, frozenset(SYMBOLS[char][0])))
        elif char == "@":
            positions.append(MaskPosition("@", frozenset(check_characters)))
        else:
            literal = char.upper()
            if not literal.isascii() or not literal.isprintable():
                raise DomainError(f"The mask can only contain ASCII characters (not “{char}”)", "mask")
            _refuse_space(literal)
            positions.append(MaskPosition("", frozenset(literal), literal))
        i += 1
    if len(positions) > MAX_MASK_POSITIONS:
        raise DomainError(f"The mask must be {MAX_MASK_POSITIONS} characters or fewer", "mask")
    if sum(1 for p in positions if p.symbol == "@") > 1:
        raise DomainError("The mask can have only one check character (@)", "mask")
    return tuple(positions)


def _refuse_space(literal: str) -> None:
    if literal.isspace():
        raise DomainError(
            "The mask cannot contain spaces: spaces are taken out of references before they are checked", "mask"
        )


def compile_mask(mask: str, *, check_characters: str = DIGITS) -> CompiledMask:
    """Compile once; `check_characters` are what the ``@`` position accepts (the check-digit
    configuration's possible check characters: digits, plus e.g. ``A`` for 10→A)."""
    positions = parse_mask(mask, check_characters=check_characters)
    parts = []
    for position in positions:
        if position.symbol == "" or len(position.allowed) == 1:
            parts.append(re.escape(next(iter(position.allowed))))
        else:
            parts.append("[" + "".join(re.escape(c) for c in sorted(position.allowed)) + "]")
    check_index = next((i for i, p in enumerate(positions) if p.symbol == "@"), None)
    return CompiledMask(mask, positions, check_index, re.compile("".join(parts)))


def mask_length(mask: str) -> int:
    return len(parse_mask(mask))


def describe_positions(positions: tuple[MaskPosition, ...]) -> str:
    pieces: list[str] = []
    i = 0
    while i < len(positions):
        position = positions[i]
        if position.symbol == "":
            literal = ""
            while i < len(positions) and positions[i].symbol == "":
                literal += positions[i].literal
                i += 1
            pieces.append("a space" if literal == " " else f"“{literal}”")
            continue
        run = 1
        while i + run < len(positions) and positions[i + run].symbol == position.symbol:
            run += 1
        singular, plural = _PLURAL[position.symbol]
        pieces.append(f"a {singular}" if run == 1 else f"{run} {plural}")
        i += run
    if len(pieces) == 1:
        return pieces[0][0].upper() + pieces[0][1:]
    text = ", then ".join(pieces)
    return text[0].upper() + text[1:]
