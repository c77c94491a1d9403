from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovSelect, GovSubmitInput, GovTextInput
from wtforms import SelectField, StringField, SubmitField
from wtforms.validators import Length, Optional, ValidationError

from app.forms.fields import UkDateField, strip_filter


class AuditFilterForm(FlaskForm):
    """A GET filter form: no CSRF (it changes nothing)."""

    class Meta:
        csrf = False

    actor = StringField(
        "User e-mail contains",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[Optional(), Length(max=320, message="This must be 320 characters or fewer")],
    )
    action = SelectField(
        "What happened", widget=GovSelect(), choices=[], validate_choice=False, validators=[Optional()]
    )
    object_type = SelectField(
        "What it happened to", widget=GovSelect(), choices=[], validate_choice=False, validators=[Optional()]
    )
    date_from = UkDateField("From date", validators=[Optional()])
    date_to = UkDateField("To date", validators=[Optional()])
    submit = SubmitField("Apply filters", widget=GovSubmitInput())

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The to date must be the same as or after the from date")
