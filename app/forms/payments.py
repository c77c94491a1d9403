"""Filters for the staff list of card payment attempts."""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovSelect, GovSubmitInput, GovTextInput
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import Length, Optional

from app.domain.payments import STATUSES
from app.forms.fields import strip_filter


class PaymentFilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET search form changes nothing

    reference = StringField(
        "Payment or account reference",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=60, message="The reference must be 60 characters or fewer")],
    )
    status = SelectField(
        "Status",
        widget=GovSelect(),
        choices=[("", "Any status")] + list(STATUSES.items()),
        validate_choice=False,
    )
    submit = SubmitField("Search", widget=GovSubmitInput())
