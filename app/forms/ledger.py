from __future__ import annotations

from flask import current_app
from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovDateInput, GovSelect, GovSubmitInput, GovTextInput
from markupsafe import Markup
from wtforms import HiddenField, SelectField, StringField, SubmitField
from wtforms.validators import Email, InputRequired, Length, Optional, ValidationError

from app.domain.errors import DomainError
from app.domain.ledger import normalise_receipt_reference
from app.forms.fields import MoneyField, UkDateField, strip_filter


class _Direct:
    """Render the widget's template straight from the Jinja environment.

    govuk-frontend-wtf renders each field with flask.render_template, which runs every context
    processor again for every field; the app's (app/templating.py) builds the staff navigation
    with a database query per item, so a form of 14 fields cost ~45 ms a page. The widget
    templates need nothing from that context.
    """

    def render(self, params):
        # The template autoescapes what it is given, as render_template would.
        return Markup(current_app.jinja_env.get_template(self.template).render(params=params))  # noqa: S704


class _TextInput(_Direct, GovTextInput):
    pass


class _Select(_Direct, GovSelect):
    pass


class _DateInput(_Direct, GovDateInput):
    pass


class _Submit(_Direct, GovSubmitInput):
    pass


class _DateField(UkDateField):
    widget = _DateInput()


class _MoneyField(MoneyField):
    widget = _TextInput()


def _select(label: str) -> SelectField:
    return SelectField(label, widget=_Select(), choices=[], validate_choice=False, validators=[Optional()])


class LedgerFilterForm(FlaskForm):
    """The transaction search: a GET form (no CSRF, it changes nothing). Every filter is optional."""

    class Meta:
        csrf = False

    date_from = _DateField("From date", validators=[Optional()])
    date_to = _DateField("To date", validators=[Optional()])
    fund = _select("Fund")
    method = _select("Method of payment")
    account = StringField(
        "Account reference",
        widget=_TextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=40, message="The account reference must be 40 characters or fewer")],
    )
    receipt = StringField(
        "Receipt reference",
        widget=_TextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=20, message="A receipt reference is 11 characters, like A18A-24FV-8")],
    )
    amount_from = _MoneyField("Amount from", optional=True, allow_negative=True)
    amount_to = _MoneyField("Amount to", optional=True, allow_negative=True)
    text = StringField(
        "Payer or narrative contains",
        widget=_TextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=100, message="The text to look for must be 100 characters or fewer")],
    )
    user = _select("Taken by")
    office = _select("Office")
    source = _select("Source")
    # Kept from the sort links, so applying filters keeps the order (checked against a whitelist).
    sort = HiddenField()
    direction = HiddenField()
    submit = SubmitField("Search", widget=_Submit())

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The to date must be the same as or after the from date")

    def validate_amount_to(self, field):
        if field.data is not None and self.amount_from.data is not None and field.data < self.amount_from.data:
            raise ValidationError("The amount to must be the same as or more than the amount from")

    def validate_receipt(self, field):
        if field.data:
            try:
                field.data = normalise_receipt_reference(field.data)
            except DomainError as error:
                raise ValidationError(error.message) from None


class EmailReceiptForm(FlaskForm):
    email = StringField(
        "Email address",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter an email address"),
            Length(max=254, message="Email address must be 254 characters or fewer"),
            Email(
                message="Enter an email address in the correct format, like name@example.com",
                check_deliverability=False,
            ),
        ],
    )
    submit = SubmitField("Email the receipt", widget=GovSubmitInput())
