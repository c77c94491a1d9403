"""Forms for the citizen's payment journey: one question per page.

The fund's reference rule and limits are checked by the domain (app/domain/payments.py),
which names the field each failure belongs to; these forms only collect the answers, with
our own GOV.UK messages where they check anything themselves.
"""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovRadioInput, GovSelect, GovSubmitInput, GovTextInput
from wtforms import HiddenField, RadioField, SelectField, StringField, SubmitField
from wtforms.validators import Email, InputRequired, Length, Optional, Regexp

from app.forms.fields import MoneyField, strip_filter

# A UK postcode, spaces optional (GOV.UK Design System: allow any case and spacing).
POSTCODE = re.compile(r"^(GIR ?0AA|[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2})$", re.IGNORECASE)
# Funds are radios up to this many, then a select that JavaScript turns into an autocomplete.
MAX_RADIOS = 8


class FundForm(FlaskForm):
    fund = RadioField(
        "What do you want to pay for?",
        widget=GovRadioInput(),
        choices=[],
        validate_choice=False,  # an unknown code gets our own message from the route
        validators=[InputRequired(message="Select what you want to pay for")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class FundSelectForm(FundForm):
    fund = SelectField(
        "What do you want to pay for?",
        widget=GovSelect(),
        choices=[],
        validate_choice=False,
        validators=[InputRequired(message="Select what you want to pay for")],
    )


class ReferenceForm(FlaskForm):
    reference = StringField(
        "Reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Length(max=400, message="The reference must be 40 characters or fewer")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class AmountForm(FlaskForm):
    amount = MoneyField("How much do you want to pay?", required_message="Enter how much you want to pay")
    submit = SubmitField("Continue", widget=GovSubmitInput())


class AddressForm(FlaskForm):
    name = StringField(
        "Full name",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter your full name"),
            Length(max=200, message="Full name must be 200 characters or fewer"),
        ],
    )
    line1 = StringField(
        "Address line 1",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter address line 1, typically the building and street"),
            Length(max=100, message="Address line 1 must be 100 characters or fewer"),
        ],
    )
    line2 = StringField(
        "Address line 2 (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=100, message="Address line 2 must be 100 characters or fewer")],
    )
    town = StringField(
        "Town or city",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter town or city"),
            Length(max=100, message="Town or city must be 100 characters or fewer"),
        ],
    )
    postcode = StringField(
        "Postcode",
        widget=GovTextInput(),
        filters=[strip_filter, lambda v: v.upper() if isinstance(v, str) else v],
        validators=[
            InputRequired(message="Enter postcode"),
            Regexp(POSTCODE, message="Enter a full UK postcode, like AA3 1AB"),
        ],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class EmailForm(FlaskForm):
    email = StringField(
        "Email address (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="We will send your receipt to this address",
        validators=[
            Optional(),
            Length(max=254, message="Email address must be 254 characters or fewer"),
            Email(
                message="Enter an email address in the correct format, like name@example.com",
                check_deliverability=False,
            ),
        ],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class PayForm(FlaskForm):
    """ "Continue to payment": carries the basket's key so a second press finds the first payment."""

    basket_key = HiddenField()
    submit = SubmitField("Continue to payment", widget=GovSubmitInput())


class ButtonForm(FlaskForm):
    """A form that is only a button (remove an item, try again, continue to the card page)."""

    submit = SubmitField("Continue", widget=GovSubmitInput())
