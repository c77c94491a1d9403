"""Suspense forms: the list's filters, a note, and the allocation lines.

The allocation form has a fixed number of lines (blank ones are ignored), so splitting an
item across several funds works without JavaScript. The domain (app/domain/suspense.py)
checks every line against its fund's rules and the total against what is left.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovSelect, GovSubmitInput, GovTextArea, GovTextInput
from wtforms import Form, FormField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields import FieldList
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from app.domain.suspense import AGE_BANDS, MAX_ALLOCATION_NOTE_LENGTH, MAX_NOTE_LENGTH, SOURCES
from app.forms.fields import MoneyField, strip_filter

LINES = 5


class SuspenseFilterForm(FlaskForm):
    """A GET filter form: no CSRF (it changes nothing)."""

    class Meta:
        csrf = False

    text = StringField(
        "Reference, payer or detail",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=100, message="The search text must be 100 characters or fewer")],
    )
    status = SelectField(
        "Status",
        widget=GovSelect(),
        choices=[("open", "Open"), ("allocated", "Allocated"), ("all", "Open and allocated")],
        default="open",
        validate_choice=False,
    )
    age = SelectField(
        "Age",
        widget=GovSelect(),
        choices=[("", "Any age")] + [(key, label) for key, (label, _, _) in AGE_BANDS.items()],
        default="",
        validate_choice=False,
    )
    source = SelectField(
        "Source",
        widget=GovSelect(),
        choices=[("", "Any source")] + list(SOURCES.items()),
        default="",
        validate_choice=False,
    )
    amount_from = MoneyField("Amount from", optional=True)
    amount_to = MoneyField("Amount to", optional=True)
    submit = SubmitField("Search", widget=GovSubmitInput())

    def validate_amount_to(self, field):
        if self.amount_from.data is not None and field.data is not None and field.data < self.amount_from.data:
            raise ValidationError("The amount to must be the same as or more than the amount from")


class NoteForm(FlaskForm):
    text = TextAreaField(
        "Add a note",
        widget=GovTextArea(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter a note"),
            Length(max=MAX_NOTE_LENGTH, message=f"The note must be {MAX_NOTE_LENGTH} characters or fewer"),
        ],
    )
    submit = SubmitField("Add note", widget=GovSubmitInput())


class AllocationLineForm(Form):
    fund = SelectField("Fund", widget=GovSelect(), choices=[], validate_choice=False)
    reference = StringField(
        "Reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Length(max=400, message="The reference must be 400 characters or fewer")],
    )
    amount = MoneyField("Amount", optional=True)

    def is_blank(self) -> bool:
        return not (self.fund.data or self.reference.data or self.amount.raw_text.strip())


class AllocationForm(FlaskForm):
    lines = FieldList(FormField(AllocationLineForm), min_entries=LINES, max_entries=LINES)
    note = TextAreaField(
        "How the money was identified (optional)",
        widget=GovTextArea(),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(
                max=MAX_ALLOCATION_NOTE_LENGTH,
                message=f"The note must be {MAX_ALLOCATION_NOTE_LENGTH} characters or fewer",
            ),
        ],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())
