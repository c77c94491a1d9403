"""Forms for account holders: search, loading a back-office CSV extract, overriding a stop."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from govuk_frontend_wtf.wtforms_widgets import GovFileInput, GovSelect, GovSubmitInput, GovTextArea, GovTextInput
from wtforms import SelectField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.domain.references.accounts import MAX_NAME_LENGTH
from app.forms.fields import strip_filter

FUND_COLUMN = "fund-column"
CSV_EXTENSIONS = (".csv", ".txt")


class AccountSearchForm(FlaskForm):
    """A GET filter form: no CSRF (it changes nothing)."""

    class Meta:
        csrf = False

    text = StringField(
        "Account reference or name",
        widget=GovTextInput(),
        filters=[strip_filter],
        description="The start of a reference, or part of a name or address",
        validators=[
            Optional(),
            Length(max=MAX_NAME_LENGTH, message=f"Enter {MAX_NAME_LENGTH} characters or fewer"),
        ],
    )
    fund = SelectField("Fund", widget=GovSelect(), choices=[], validate_choice=False, validators=[Optional()])
    submit = SubmitField("Search", widget=GovSubmitInput())


class AccountUploadForm(FlaskForm):
    fund = SelectField(
        "Fund",
        widget=GovSelect(),
        choices=[],
        description="The fund these accounts belong to, or let each row of the file say",
        validators=[DataRequired(message="Choose the fund the accounts belong to")],
    )
    file = FileField(
        "Account holders file",
        widget=GovFileInput(),
        description="A CSV file saved as UTF-8, with a header row and a “reference” column",
    )
    submit = SubmitField("Load account holders", widget=GovSubmitInput())

    def validate_file(self, field):
        upload = field.data
        if upload is None or not getattr(upload, "filename", ""):
            raise ValidationError("Select a CSV file of account holders")
        if not upload.filename.lower().endswith(CSV_EXTENSIONS):
            raise ValidationError("The selected file must be a CSV")


class StopOverrideForm(FlaskForm):
    reason = TextAreaField(
        "Why should this payment be taken?",
        widget=GovTextArea(),
        filters=[strip_filter],
        description="This is recorded in the audit trail with your name",
        validators=[
            DataRequired(message="Enter why the payment should be taken even though the account is on stop"),
            Length(max=500, message="The reason must be 500 characters or fewer"),
        ],
    )
    submit = SubmitField("Override the stop", widget=GovSubmitInput())
