"""Forms for council settings and configuration (funds, fund groups, methods, VAT codes, offices)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from govuk_frontend_wtf.wtforms_widgets import (
    GovCheckboxesInput,
    GovCheckboxInput,
    GovFileInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import BooleanField, RadioField, SelectField, SelectMultipleField, StringField, SubmitField, TextAreaField
from wtforms.validators import Email, InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from app.domain.council import PHASES
from app.domain.methods import CHANNELS
from app.forms.fields import MoneyField, UkDateField, WholeNumberField, strip_filter

CODE_HINT = "Up to 10 letters or numbers, no spaces. Other systems use it, so it cannot be changed later."


def _code_field():
    return StringField(
        "Code",
        widget=GovTextInput(),
        description=CODE_HINT,
        filters=[strip_filter, lambda v: v.upper() if isinstance(v, str) else v],
        validators=[
            InputRequired(message="Enter a code"),
            Regexp(r"^[A-Z0-9]{1,10}$", message="The code must be 1 to 10 letters or numbers, with no spaces"),
        ],
    )


def _name_field(what: str):
    return StringField(
        "Name",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message=f"Enter the name of the {what}"),
            Length(max=120, message="The name must be 120 characters or fewer"),
        ],
    )


class CouncilSettingsForm(FlaskForm):
    council_name = StringField(
        "Council name",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter the council name"),
            Length(max=120, message="The council name must be 120 characters or fewer"),
        ],
    )
    service_name = StringField(
        "Service name",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="Shown to the public in the header and page titles, like Pay the council",
        validators=[
            InputRequired(message="Enter the service name"),
            Length(max=120, message="The service name must be 120 characters or fewer"),
        ],
    )
    brand_colour = StringField(
        "Brand colour",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="A hex code, like #1d70b8. White text on it must have a contrast ratio of at least 4.5 to 1.",
        validators=[InputRequired(message="Enter the brand colour")],
    )
    phase = RadioField(
        "Phase",
        widget=GovRadioInput(),
        choices=[(p, p.capitalize()) for p in PHASES],
        validators=[InputRequired(message="Select the phase of the service")],
    )
    basket_max_items = WholeNumberField(
        "Most payments in one basket",
        invalid_message="Enter the most payments in one basket as a number, like 10",
        description="How many things a citizen can pay for with one card payment, from 1 to 50",
        validators=[
            InputRequired(message="Enter the most payments in one basket"),
            NumberRange(min=1, max=50, message="Enter a number of payments from 1 to 50"),
        ],
    )
    contact_email = StringField(
        "Contact e-mail address",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            Optional(),
            Email(
                message="Enter an e-mail address in the correct format, like income@council.gov.uk",
                check_deliverability=False,
            ),
        ],
    )
    contact_phone = StringField(
        "Contact telephone number",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=40, message="The telephone number must be 40 characters or fewer")],
    )
    website_url = StringField(
        "Council website address",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            Optional(),
            Regexp(r"^https://\S+$", message="Enter a website address starting with https://"),
            Length(max=300, message="The website address must be 300 characters or fewer"),
        ],
    )
    accessibility_contact = TextAreaField(
        "Extra accessibility contact information",
        widget=GovTextArea(),
        filters=[strip_filter],
        description="Shown in the accessibility statement, for example opening hours or a text relay number",
        validators=[Optional(), Length(max=2000, message="This must be 2000 characters or fewer")],
    )
    postal_address = TextAreaField(
        "Council postal address",
        widget=GovTextArea(),
        filters=[strip_filter],
        description="Printed on VAT receipts",
        validators=[Optional(), Length(max=500, message="The address must be 500 characters or fewer")],
    )
    vat_registration_number = StringField(
        "VAT registration number",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="Printed on VAT receipts, like GB123456789",
        validators=[Optional(), Length(max=20, message="Enter a VAT registration number like GB123456789")],
    )
    refund_approval_pence = MoneyField(
        "Refunds that need a senior officer's approval: above",
        required_message="Enter the amount above which a refund needs approval",
        description="In pounds, like 500.00. A senior finance officer who did not ask for the refund approves it.",
    )
    logo = FileField(
        "Logo (optional)",
        widget=GovFileInput(),
        description=(
            "A PNG or JPEG image, smaller than 200KB, about 40 pixels high. Leave empty to keep the current logo."
        ),
    )
    submit = SubmitField("Save settings", widget=GovSubmitInput())


class OfficeForm(FlaskForm):
    code = _code_field()
    name = _name_field("office")
    address = TextAreaField(
        "Address (optional)",
        widget=GovTextArea(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=500, message="The address must be 500 characters or fewer")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class VatCodeForm(FlaskForm):
    code = _code_field()
    name = _name_field("VAT code")
    submit = SubmitField("Continue", widget=GovSubmitInput())


class VatRateForm(FlaskForm):
    rate = StringField(
        "Rate (%)",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="For example 20 or 17.5",
        validators=[InputRequired(message="Enter the VAT rate as a percentage")],
    )
    effective_from = UkDateField(
        "In force from",
        description="For example, 1 4 2027",
        validators=[InputRequired(message="Enter the date the rate is in force from")],
    )
    submit = SubmitField("Add rate", widget=GovSubmitInput())


class VatCodeAddForm(VatCodeForm, VatRateForm):
    """Adding a VAT code asks for its first rate too."""

    submit = SubmitField("Continue", widget=GovSubmitInput())


def _limits_check(form):
    if (
        form.maximum_pence.data is not None
        and form.minimum_pence.data is not None
        and form.maximum_pence.data < form.minimum_pence.data
    ):
        raise ValidationError("The maximum amount must be the same as or more than the minimum amount")


class MethodForm(FlaskForm):
    code = _code_field()
    name = _name_field("method of payment")
    channel = SelectField(
        "Channel",
        widget=GovSelect(),
        choices=[("", "Choose a channel")] + list(CHANNELS.items()),
        validators=[InputRequired(message="Select the channel")],
    )
    minimum_pence = MoneyField("Minimum amount", description="In pounds, like 0.01", default=1)
    maximum_pence = MoneyField("Maximum amount (optional)", optional=True, description="Leave empty for no maximum")
    refundable = BooleanField("Payments by this method can be refunded", widget=GovCheckboxInput())
    staff_can_use = BooleanField("Staff can take payments by this method", default=True, widget=GovCheckboxInput())
    submit = SubmitField("Continue", widget=GovSubmitInput())

    def validate_channel(self, field):
        if field.data not in CHANNELS:
            raise ValidationError("Select the channel")

    def validate_maximum_pence(self, field):
        _limits_check(self)

    def validate_minimum_pence(self, field):
        if field.data is not None and field.data < 1:
            raise ValidationError("The minimum amount must be at least £0.01")


class FundForm(FlaskForm):
    code = _code_field()
    name = _name_field("fund")
    description = TextAreaField(
        "Description for citizens (optional)",
        widget=GovTextArea(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=500, message="The description must be 500 characters or fewer")],
    )
    shown_to_citizens = BooleanField("Citizens can pay for this online", widget=GovCheckboxInput())
    minimum_pence = MoneyField("Minimum amount", description="In pounds, like 1.00", default=100)
    maximum_pence = MoneyField("Maximum amount (optional)", optional=True, description="Leave empty for no maximum")
    vat_code = SelectField(
        "VAT code", widget=GovSelect(), choices=[], validators=[InputRequired(message="Select a VAT code")]
    )
    ledger_code = StringField(
        "General ledger code (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=30, message="The ledger code must be 30 characters or fewer")],
    )
    cost_centre = StringField(
        "Cost centre (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=30, message="The cost centre must be 30 characters or fewer")],
    )
    reference_label = StringField(
        "What the reference is called",
        default="Reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="For example, Council tax account number",
        validators=[
            InputRequired(message="Enter what the reference is called"),
            Length(max=80, message="This must be 80 characters or fewer"),
        ],
    )
    reference_hint = StringField(
        "Where to find the reference (optional)",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="For example, It is 8 digits and is on the top right of your bill",
        validators=[Optional(), Length(max=200, message="This must be 200 characters or fewer")],
    )
    account_must_exist = BooleanField("The account must exist in the back-office extract", widget=GovCheckboxInput())
    address_required = BooleanField("Ask for the payer's address", widget=GovCheckboxInput())
    pay_account = StringField(
        "GOV.UK Pay account",
        default="default",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="The name of the GOV.UK Pay API key that takes this fund's card payments, like default",
        validators=[
            InputRequired(message="Enter the GOV.UK Pay account name"),
            Regexp(
                r"^[a-z0-9_-]{1,40}$",
                message="The account name must be lower-case letters, numbers, hyphens or underscores",
            ),
        ],
    )
    is_suspense = BooleanField("This is a suspense fund (unidentified money)", widget=GovCheckboxInput())
    submit = SubmitField("Continue", widget=GovSubmitInput())

    def validate_maximum_pence(self, field):
        _limits_check(self)

    def validate_minimum_pence(self, field):
        if field.data is not None and field.data < 1:
            raise ValidationError("The minimum amount must be at least £0.01")


class FundGroupForm(FlaskForm):
    code = _code_field()
    name = _name_field("fund group")
    funds = SelectMultipleField(
        "Funds in this group",
        widget=GovCheckboxesInput(),
        choices=[],
        coerce=str,
        description="Users in this group see these funds' transactions",
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class ConfirmForm(FlaskForm):
    """A button-only form: CSRF protection for confirm/enable/disable actions."""

    submit = SubmitField("Confirm", widget=GovSubmitInput())
