"""Forms for import templates and import rules (administrators).

The domain (app/domain/imports/templates.py and rules.py) checks the values and says what is
wrong, on which field; these forms collect them, with our own GOV.UK messages where they
check anything themselves.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import (
    GovCheckboxInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import BooleanField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import InputRequired, Length

from app.domain.imports.formats import AMOUNT_UNITS, CSV_FIELDS, DATE_FORMATS, DELIMITERS, ENCODINGS
from app.domain.imports.rules import ACTIONS, JOINS, MAX_CONDITIONS, OPERATORS
from app.forms.fields import strip_filter

MAX_SAMPLE_CHARACTERS = 50_000
SAMPLE_HINT = "Paste up to 50 lines, as they are in the file (with the header row, if the file has one)."


def _text(label: str, description: str = "", **kwargs) -> StringField:
    kwargs.setdefault("filters", [strip_filter])
    return StringField(label, widget=GovTextInput(), description=description, **kwargs)


def _sample_field(label: str = "Sample lines") -> TextAreaField:
    return TextAreaField(
        label,
        widget=GovTextArea(),
        description=SAMPLE_HINT,
        validators=[
            InputRequired(message="Paste some lines from a file"),
            Length(max=MAX_SAMPLE_CHARACTERS, message="Paste 50,000 characters or fewer"),
        ],
    )


class CsvTemplateForm(FlaskForm):
    name = _text("Name", "For example, Bank of Demo CSV statement")
    description = TextAreaField(
        "Description (optional)",
        widget=GovTextArea(),
        filters=[strip_filter],
        description="What the file is and who sends it",
    )
    delimiter = RadioField(
        "What separates the values",
        widget=GovRadioInput(),
        choices=[(key, label) for key, (_, label) in DELIMITERS.items()],
        validate_choice=False,
        default="comma",
    )
    header_rows = _text(
        "Number of header rows",
        "Rows at the top of the file before the first payment. 0 if there are none.",
        default="1",
    )
    encoding = RadioField(
        "How the text is saved (encoding)",
        widget=GovRadioInput(),
        choices=list(ENCODINGS.items()),
        validate_choice=False,
        default="utf-8-sig",
    )
    date_format = SelectField(
        "How dates are written",
        widget=GovSelect(),
        choices=[(key, label) for key, (_, label) in DATE_FORMATS.items()],
        validate_choice=False,
        default="dd/mm/yyyy",
    )
    amount_unit = RadioField(
        "Amounts are in",
        widget=GovRadioInput(),
        choices=list(AMOUNT_UNITS.items()),
        validate_choice=False,
        default="pounds",
    )
    negative_values = _text(
        "Values in the sign column that make an amount negative",
        "Separated by commas, like D or -. Only used if the file has a sign column.",
        default="-",
    )
    allow_negative = BooleanField(
        "Amounts may be negative (a minus sign in the amount column)", widget=GovCheckboxInput()
    )
    extra_columns = TextAreaField(
        "Other columns for rules to test (optional)",
        widget=GovTextArea(),
        filters=[strip_filter],
        description="One a line: a field name, an equals sign and the column, like outlet = 6 or channel = Channel",
    )
    default_fund = SelectField(
        "Default fund",
        widget=GovSelect(),
        choices=[],
        validate_choice=False,
        description="For lines with no fund column. Leave as none to route each line by its reference.",
    )
    default_method = SelectField(
        "Default method of payment",
        widget=GovSelect(),
        choices=[],
        validate_choice=False,
        description="For lines with no method column",
    )
    submit = SubmitField("Save template", widget=GovSubmitInput())

    def values(self) -> dict:
        values = {name: getattr(self, name).data for name in self._fields if name not in ("csrf_token", "submit")}
        return values


# One column field per mappable field ("column_reference" …), added to the class.
for _name, _label in CSV_FIELDS.items():
    _short = _label.split(" (")[0]
    _hint = "A column number, like 3, or the column's heading"
    if _name == "line_id":
        _hint += ". Lines with the same id are reported as duplicates."
    setattr(
        CsvTemplateForm,
        f"column_{_name}",
        _text(
            f"Column for the {_short[0].lower() + _short[1:]}" + ("" if "required" in _label else " (optional)"), _hint
        ),
    )

COLUMN_FIELD_NAMES = [f"column_{name}" for name in CSV_FIELDS]


class TemplateDefaultsForm(FlaskForm):
    default_fund = SelectField(
        "Default fund",
        widget=GovSelect(),
        choices=[],
        validate_choice=False,
        description="Leave as none to route each line by its reference",
    )
    default_method = SelectField("Default method of payment", widget=GovSelect(), choices=[], validate_choice=False)
    submit = SubmitField("Save defaults", widget=GovSubmitInput())


class TrySampleForm(FlaskForm):
    sample = _sample_field()
    submit = SubmitField("Read these lines", widget=GovSubmitInput())


class RuleForm(FlaskForm):
    name = _text("Name of the rule", "For example, Old council tax references go to suspense")
    template = SelectField(
        "Which files it applies to", widget=GovSelect(), choices=[], validate_choice=False, default=""
    )
    join = RadioField(
        "Which conditions must be met",
        widget=GovRadioInput(),
        choices=list(JOINS.items()),
        validate_choice=False,
        default="all",
    )
    action = RadioField(
        "What the rule does", widget=GovRadioInput(), choices=list(ACTIONS.items()), validate_choice=False
    )
    action_value = _text(
        "Value for the action",
        "The fund or method code to set; the prefix to take off (several separated by commas); "
        "the regular expression to find; or, for suspense and skip, the reason (optional)",
    )
    replacement = StringField(
        "Replacement (only to change the reference)",
        widget=GovTextInput(),
        description="What the matched part becomes. \\1 is the first group in brackets. Leave blank to remove it.",
    )
    stops = BooleanField("Stop checking further rules when this one matches", widget=GovCheckboxInput())
    try_template = SelectField(
        "Template to read the sample with", widget=GovSelect(), choices=[], validate_choice=False
    )
    sample = TextAreaField(
        "Sample lines (optional)",
        widget=GovTextArea(),
        description=SAMPLE_HINT + " Nothing is saved when you try the rule.",
        validators=[Length(max=MAX_SAMPLE_CHARACTERS, message="Paste 50,000 characters or fewer")],
    )
    try_rule = SubmitField("Try this rule", widget=GovSubmitInput())
    submit = SubmitField("Save rule", widget=GovSubmitInput())

    def condition_rows(self) -> list[tuple]:
        return [
            (number, getattr(self, f"field_{number}"), getattr(self, f"op_{number}"), getattr(self, f"value_{number}"))
            for number in range(1, MAX_CONDITIONS + 1)
        ]

    def values(self) -> dict:
        return {
            "name": self.name.data,
            "template": self.template.data or None,
            "join": self.join.data,
            "conditions": [
                {"field": field.data or "", "op": op.data or "", "value": value.data or ""}
                for _, field, op, value in self.condition_rows()
            ],
            "action": self.action.data,
            "action_value": self.action_value.data or "",
            "replacement": self.replacement.data or "",
            "stops": bool(self.stops.data),
        }


for _number in range(1, MAX_CONDITIONS + 1):
    setattr(
        RuleForm,
        f"field_{_number}",
        _text(f"Field for condition {_number}", "Like reference, amount, channel or fund"),
    )
    setattr(
        RuleForm,
        f"op_{_number}",
        SelectField(
            f"Test for condition {_number}",
            widget=GovSelect(),
            choices=[("", "Choose a test")] + list(OPERATORS.items()),
            validate_choice=False,
            default="",
        ),
    )
    setattr(
        RuleForm,
        f"value_{_number}",
        StringField(
            f"Value for condition {_number}",
            widget=GovTextInput(),
            filters=[strip_filter],
            description="Lists separated by commas; amounts like 0.01 to 100.00",
        ),
    )
