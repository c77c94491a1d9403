from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovCheckboxesInput, GovSubmitInput, GovTextInput
from wtforms import SelectMultipleField, StringField, SubmitField
from wtforms.validators import Email, InputRequired, Length

from app.domain.users import ROLES
from app.forms.fields import strip_filter


class UserForm(FlaskForm):
    name = StringField(
        "Full name",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter the user's full name"),
            Length(max=120, message="The name must be 120 characters or fewer"),
        ],
    )
    email = StringField(
        "E-mail address",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="They sign in with this. It cannot be changed later.",
        validators=[
            InputRequired(message="Enter the user's e-mail address"),
            Email(
                message="Enter an e-mail address in the correct format, like name@council.gov.uk",
                check_deliverability=False,
            ),
            Length(max=320, message="The e-mail address must be 320 characters or fewer"),
        ],
    )
    roles = SelectMultipleField(
        "Roles",
        widget=GovCheckboxesInput(),
        choices=[(code, role.name) for code, role in ROLES.items()],
        description="Select all that apply.",
        validators=[InputRequired(message="Select at least one role")],
    )
    fund_groups = SelectMultipleField(
        "Fund groups",
        widget=GovCheckboxesInput(),
        choices=[],
        coerce=str,
        description="The user sees transactions for the funds in these groups.",
    )
    submit = SubmitField("Continue", widget=GovSubmitInput())


class ChangeUserForm(UserForm):
    email = None  # the e-mail address is the sign-in name and does not change
