"""Forms for reference rules: check-digit configurations, formats, rule settings and the tester.

The domain (app/domain/references) checks the values and says what is wrong, on which field;
these forms only collect them, with our own GOV.UK messages where they check anything themselves.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import (
    GovCheckboxesInput,
    GovCheckboxInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import BooleanField, RadioField, SelectField, SelectMultipleField, StringField, SubmitField, TextAreaField
from wtforms.validators import InputRequired, Length, Regexp, ValidationError

from app.domain.references import ALGORITHMS, CHARACTER_TYPES, OVERPAYMENT
from app.forms.fields import MoneyField, UkDateField, strip_filter

MAX_BULK_REFERENCES = 1000
CHANNEL_CHOICES = [("staff", "Staff (every check, with reasons)"), ("public", "Public (what a citizen sees)")]


def _text(label: str, description: str = "", **kwargs) -> StringField:
    kwargs.setdefault("filters", [strip_filter])
    return StringField(label, widget=GovTextInput(), description=description, **kwargs)


def _area(label: str, description: str = "", **kwargs) -> TextAreaField:
    return TextAreaField(label, widget=GovTextArea(), filters=[strip_filter], description=description, **kwargs)


class CheckDigitConfigForm(FlaskForm):
    code = _text(
        "Code",
        "Up to 10 letters or numbers, no spaces. It cannot be changed later.",
        filters=[strip_filter, lambda v: v.upper() if isinstance(v, str) else v],
        validators=[
            InputRequired(message="Enter a code"),
            Regexp(r"^[A-Z0-9]{1,10}$", message="The code must be 1 to 10 letters or numbers, with no spaces"),
        ],
    )
    name = _text(
        "Name",
        validators=[
            InputRequired(message="Enter the name of the check-digit configuration"),
            Length(max=120, message="The name must be 120 characters or fewer"),
        ],
    )
    algorithm = RadioField(
        "Algorithm",
        widget=GovRadioInput(),
        choices=list(ALGORITHMS.items()),
        validate_choice=False,
        validators=[InputRequired(message="Choose a check-digit algorithm")],
    )
    modulus = _text("Modulus", "A whole number, like 10 or 11. Not used by Luhn.", default="10")
    weights = _text(
        "Weights",
        "One for each character of the reference, separated by commas, like 3,7,1,3,7,1,3,7,0. Not used by Luhn.",
    )
    subtract_from_modulus = BooleanField(
        "Subtract the remainder from the modulus (weighted sum only)", widget=GovCheckboxInput()
    )
    prefix_substitutions = _text(
        "Prefix substitutions (optional)",
        "Leading letters replaced by digits before the sum, like BJ=05. Weighted sum only.",
    )
    result_substitutions = _text(
        "Result substitutions (optional)",
        "Results that become another check character, like 10=A, 11=0 (or 10=never). Not used by Luhn.",
    )
    description = _area("Notes for administrators (optional)", "Never shown to the public")
    submit = SubmitField("Continue", widget=GovSubmitInput())

    def validate_algorithm(self, field):
        if field.data not in ALGORITHMS:
            raise ValidationError("Choose a check-digit algorithm")

    def values(self) -> dict:
        return {
            "code": self.code.data,
            "name": self.name.data,
            "algorithm": self.algorithm.data,
            "modulus": self.modulus.data,
            "weights": self.weights.data,
            "subtract_from_modulus": bool(self.subtract_from_modulus.data),
            "prefix_substitutions": self.prefix_substitutions.data or "",
            "result_substitutions": self.result_substitutions.data or "",
            "description": self.description.data or "",
        }


class ReferenceFormatForm(FlaskForm):
    label = _text("Name of the format", "For example, New council tax format")
    example = _text("Example reference", "One that passes this format, like the one on a bill")
    effective_from = UkDateField("Date it starts (optional)", description="For example, 1 4 2025")
    effective_to = UkDateField("Date it ends (optional)", description="For example, 31 3 2027")
    channels = SelectMultipleField(
        "Who can use this format",
        widget=GovCheckboxesInput(),
        choices=[("public", "The public"), ("staff", "Staff")],
        coerce=str,
        validate_choice=False,
        default=["public", "staff"],
    )
    min_length = _text("Shortest length (optional)", "Number of characters")
    max_length = _text("Longest length (optional)", "Number of characters")
    character_type = RadioField(
        "Characters allowed",
        widget=GovRadioInput(),
        choices=list(CHARACTER_TYPES.items()),
        validate_choice=False,
        default="",
    )
    pattern = _text(
        "Regular expression (optional)",
        "Matched against the whole reference, like 55[0-9]{8}. Lookarounds and backreferences are not allowed.",
    )
    mask = _text(
        "Mask (optional)",
        "# digit, $ letter, ? letter or digit, * letter, digit, space, / or -, @ check character, "
        "anything else itself, like 5#######@",
    )
    check_digit = SelectField("Check digit", widget=GovSelect(), choices=[], validate_choice=False)
    staff_warning = _area("Warning for staff (optional)", "Shown to staff when a reference matches this format")
    known_good = _area("References that must pass (optional)", "One a line")
    known_bad = _area("References that must fail (optional)", "One a line")
    submit = SubmitField("Save format", widget=GovSubmitInput())

    def values(self) -> dict:
        channels = set(self.channels.data or [])
        return {
            "label": self.label.data,
            "example": self.example.data,
            "effective_from": self.effective_from.data,
            "effective_to": self.effective_to.data,
            "public": "public" in channels,
            "staff": "staff" in channels,
            "min_length": self.min_length.data,
            "max_length": self.max_length.data,
            "character_type": self.character_type.data or "",
            "pattern": self.pattern.data or "",
            "mask": self.mask.data or "",
            "check_digit": self.check_digit.data or None,
            "staff_warning": self.staff_warning.data or "",
            "known_good": self.known_good.data or "",
            "known_bad": self.known_bad.data or "",
        }


class RuleSettingsForm(FlaskForm):
    remove_characters = _text(
        "Symbols to take out of references (optional)",
        "Spaces are always taken out. For example, -/ takes out hyphens and slashes.",
    )
    public_stop_message = _area(
        "Message the public see for an account on stop (optional)",
        "Leave empty to show the account's own stop message",
    )
    overpayment = RadioField(
        "When someone pays more than they owe",
        widget=GovRadioInput(),
        choices=list(OVERPAYMENT.items()),
        validate_choice=False,
        validators=[InputRequired(message="Choose what to do when someone pays more than they owe")],
    )
    submit = SubmitField("Save settings", widget=GovSubmitInput())

    def validate_overpayment(self, field):
        if field.data not in OVERPAYMENT:
            raise ValidationError("Choose what to do when someone pays more than they owe")


class TryReferenceForm(FlaskForm):
    class Meta:
        csrf = False  # a GET form that changes nothing

    reference = _text(
        "Reference",
        validators=[
            InputRequired(message="Enter a reference to try"),
            Length(max=400, message="The reference must be 400 characters or fewer"),
        ],
    )
    amount = MoneyField("Amount (optional)", optional=True, description="In pounds, like 125.00")
    channel = RadioField(
        "Try it as",
        widget=GovRadioInput(),
        choices=CHANNEL_CHOICES,
        validate_choice=False,
        default="staff",
    )
    submit = SubmitField("Try reference", widget=GovSubmitInput())

    def validate_channel(self, field):
        if field.data not in dict(CHANNEL_CHOICES):
            raise ValidationError("Choose who to try the reference as")


class TryManyForm(FlaskForm):
    references = _area(
        "References",
        f"One a line, up to {MAX_BULK_REFERENCES}",
        validators=[InputRequired(message="Enter at least one reference, one a line")],
    )
    channel = RadioField(
        "Check them as",
        widget=GovRadioInput(),
        choices=CHANNEL_CHOICES,
        validate_choice=False,
        default="staff",
    )
    submit = SubmitField("Check references", widget=GovSubmitInput())

    def reference_lines(self) -> list[str]:
        return [line.strip() for line in (self.references.data or "").splitlines() if line.strip()]

    def validate_references(self, field):
        lines = self.reference_lines()
        if not lines:
            raise ValidationError("Enter at least one reference, one a line")
        if len(lines) > MAX_BULK_REFERENCES:
            raise ValidationError(
                f"Enter {MAX_BULK_REFERENCES} references or fewer (you entered {len(lines)}): check the rest separately"
            )

    def validate_channel(self, field):
        if field.data not in dict(CHANNEL_CHOICES):
            raise ValidationError("Choose who to check the references as")
