"""The staff payment form: method, office, payer and up to five lines on one page.

Staff take payments all day, so this is one page rather than one question per page (GOV.UK
Service Manual: internal services for expert users may group questions). Blank lines are
ignored; the domain (app/domain/staff_payments.py) checks everything else.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovRadioInput, GovSelect, GovSubmitInput, GovTextArea, GovTextInput
from wtforms import Form, FormField, RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields import FieldList
from wtforms.validators import Email, InputRequired, Length, Optional

from app.forms.fields import MoneyField, strip_filter

LINES = 5


class LineForm(Form):
    fund = SelectField("Fund", widget=GovSelect(), choices=[], validate_choice=False)
    reference = StringField(
        "Reference", widget=GovTextInput(), filters=[strip_filter], validators=[Length(max=400, message="Too long")]
    )
    amount = MoneyField("Amount", optional=True)
    narrative = StringField(
        "Note (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=200, message="The note must be 200 characters or fewer")],
    )

    def is_blank(self) -> bool:
        return not (self.fund.data or self.reference.data or self.amount.raw_text.strip())


class StaffPaymentForm(FlaskForm):
    method = RadioField(
        "How did they pay?",
        widget=GovRadioInput(),
        choices=[],
        validate_choice=False,
        validators=[InputRequired(message="Select how the payer paid")],
    )
    cheque_number = StringField("Cheque number", widget=GovTextInput(), filters=[strip_filter])
    sort_code = StringField("Sort code", widget=GovTextInput(), filters=[strip_filter])
    account_number = StringField("Account number", widget=GovTextInput(), filters=[strip_filter])
    drawer = StringField("Name on the account", widget=GovTextInput(), filters=[strip_filter])
    office = SelectField(
        "Office", widget=GovSelect(), choices=[], validate_choice=False,
        validators=[InputRequired(message="Select the office taking the payment")],
    )  # fmt: skip
    lines = FieldList(FormField(LineForm), min_entries=LINES, max_entries=LINES)
    payer_name = StringField(
        "Payer's name (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=200, message="The name must be 200 characters or fewer")],
    )
    payer_email = StringField(
        "Payer's email address for a receipt (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            Optional(),
            Email(
                message="Enter an email address in the correct format, like name@example.com",
                check_deliverability=False,
            ),
        ],
    )
    payer_address = TextAreaField(
        "Payer's address (optional)",
        widget=GovTextArea(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=500, message="The address must be 500 characters or fewer")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())
