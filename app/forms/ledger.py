from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovSelect, GovSubmitInput, GovTextInput
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import Length, Optional

from app.forms.fields import strip_filter


class LedgerFilterForm(FlaskForm):
    """A GET filter form: no CSRF (it changes nothing)."""

    class Meta:
        csrf = False

    receipt = StringField(
        "Receipt reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=20, message="A receipt reference is 11 characters, like A18A-24FV-8")],
    )
    account = StringField(
        "Account reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=40, message="The account reference must be 40 characters or fewer")],
    )
    fund = SelectField("Fund", widget=GovSelect(), choices=[], validate_choice=False, validators=[Optional()])
    submit = SubmitField("Search", widget=GovSubmitInput())
