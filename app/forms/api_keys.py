from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovCheckboxesInput, GovSubmitInput, GovTextInput
from wtforms import SelectMultipleField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, ValidationError

from app.domain.api_keys import SCOPES
from app.forms.fields import strip_filter


class ApiKeyForm(FlaskForm):
    name = StringField(
        "Name",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="Say which system uses the key, so you know what stops working if you revoke it. "
        "For example, Kiosk payments at the town hall.",
        validators=[
            InputRequired(message="Enter a name for the key"),
            Length(max=120, message="The name must be 120 characters or fewer"),
        ],
    )
    scopes = SelectMultipleField(
        "What the key may do",
        widget=GovCheckboxesInput(),
        choices=list(SCOPES.items()),
        validate_choice=False,  # our own message, below
        description="Select all that apply. Give a key only what its system needs.",
        validators=[InputRequired(message="Select what the key may do")],
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())

    def validate_scopes(self, field):
        if any(scope not in SCOPES for scope in field.data or []):
            raise ValidationError("Select what the key may do from the list")
