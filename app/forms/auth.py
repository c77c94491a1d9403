from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovPasswordInput, GovSubmitInput, GovTextInput
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import Email, InputRequired, Length

from app.forms.fields import strip_filter


class SignInForm(FlaskForm):
    email = StringField(
        "E-mail address",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter your e-mail address"),
            Email(
                message="Enter an e-mail address in the correct format, like name@example.gov.uk",
                check_deliverability=False,
            ),
            Length(max=320, message="E-mail address must be 320 characters or fewer"),
        ],
    )
    password = PasswordField(
        "Password", widget=GovPasswordInput(), validators=[InputRequired(message="Enter your password")]
    )
    submit = SubmitField("Sign in", widget=GovSubmitInput())


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current or temporary password",
        widget=GovPasswordInput(),
        validators=[InputRequired(message="Enter your current password")],
    )
    new_password = PasswordField(
        "New password",
        widget=GovPasswordInput(),
        description="Use 12 characters or more. A few unrelated words make a strong password.",
        validators=[InputRequired(message="Enter a new password")],
    )
    confirm_password = PasswordField(
        "Confirm new password",
        widget=GovPasswordInput(),
        validators=[InputRequired(message="Confirm your new password")],
    )
    submit = SubmitField("Change password", widget=GovSubmitInput())

    def validate_confirm_password(self, field):
        from wtforms.validators import ValidationError

        if self.new_password.data and field.data != self.new_password.data:
            raise ValidationError("The passwords do not match")
