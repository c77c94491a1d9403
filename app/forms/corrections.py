"""Forms for corrections: a reversal's reason, a journal's destination, a transfer's lines.

The forms check what a form can (something entered, amounts in pounds and pence, lengths);
app/domain/corrections.py checks the rest (references, funds, what is left, the balance).
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovRadioInput, GovSelect, GovSubmitInput, GovTextArea, GovTextInput
from wtforms import Form, FormField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields import FieldList
from wtforms.validators import InputRequired, Length, ValidationError

from app.domain.corrections import MAX_REASON_LENGTH
from app.forms.fields import MoneyField, strip_filter

TRANSFER_LINES = 6


def _reason(hint: str) -> TextAreaField:
    return TextAreaField(
        "Reason",
        widget=GovTextArea(),
        filters=[strip_filter],
        description=hint,
        validators=[
            InputRequired(message="Enter the reason for the correction"),
            Length(max=MAX_REASON_LENGTH, message=f"The reason must be {MAX_REASON_LENGTH} characters or fewer"),
        ],
    )


class ReversalForm(FlaskForm):
    reason = _reason("For example, the cheque was returned unpaid. Auditors read this.")
    submit = SubmitField("Continue", widget=GovSubmitInput())


class JournalForm(FlaskForm):
    fund = SelectField(
        "Fund to move the money to",
        widget=GovSelect(),
        choices=[],
        validate_choice=False,  # the domain says "Select a fund" for anything not in the list
        validators=[InputRequired(message="Select the fund to move the money to")],
    )
    reference = StringField(
        "Reference to move the money to",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter the reference to move the money to"),
            Length(max=400, message="The reference must be 400 characters or fewer"),
        ],
    )
    amount = MoneyField("Amount to move", required_message="Enter the amount to move")
    reason = _reason("For example, paid to the wrong council tax account. Auditors read this.")
    submit = SubmitField("Continue", widget=GovSubmitInput())


class TransferLineForm(Form):
    fund = SelectField("Fund", widget=GovSelect(), choices=[], validate_choice=False)
    reference = StringField(
        "Reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Length(max=400, message="The reference must be 400 characters or fewer")],
    )
    amount = MoneyField("Amount", optional=True, allow_negative=True)

    def is_blank(self) -> bool:
        return not (self.fund.data or self.reference.data or self.amount.raw_text.strip())


class TransferForm(FlaskForm):
    lines = FieldList(FormField(TransferLineForm), min_entries=TRANSFER_LINES, max_entries=TRANSFER_LINES)
    reason = _reason("For example, to put right journal JNL-AB12-CD34, which went to the wrong account.")
    submit = SubmitField("Continue", widget=GovSubmitInput())


class CorrectionFilterForm(FlaskForm):
    """A GET filter form: no CSRF (it changes nothing)."""

    class Meta:
        csrf = False

    reference = StringField(
        "Correction or receipt reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Length(max=20, message="Enter a reference like JNL-AB12-CD34 or a receipt like A18A-24FV-8")],
    )
    kind = SelectField("Kind", widget=GovSelect(), choices=[], validate_choice=False)
    submit = SubmitField("Search", widget=GovSubmitInput())


class FindPaymentForm(FlaskForm):
    """A GET form: which payment to correct, and how. No CSRF (it only leads to the next page)."""

    class Meta:
        csrf = False

    receipt = StringField(
        "Receipt reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="It is on the transaction's page, like A18A-24FV-8",
        validators=[
            InputRequired(message="Enter the receipt reference of the payment"),
            Length(max=20, message="A receipt reference is 11 characters, like A18A-24FV-8"),
        ],
    )
    action = RadioField(
        "What do you want to do?",
        widget=GovRadioInput(),
        choices=[
            ("reversal", "Reverse it: take it off the account, for example a cheque returned unpaid"),
            ("journal", "Move all or part of it to another fund or account (a journal)"),
        ],
        validate_choice=False,
        validators=[InputRequired(message="Select what you want to do")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())

    def validate_action(self, field):
        if field.data not in ("reversal", "journal"):
            raise ValidationError("Select what you want to do")
