"""Forms for payment file imports: upload, the history's filters, and reasons for senior decisions."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from govuk_frontend_wtf.wtforms_widgets import GovFileInput, GovSelect, GovSubmitInput, GovTextArea
from wtforms import SelectField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from app.domain.imports.batches import MAX_REASON_LENGTH, STATUSES
from app.forms.fields import UkDateField, strip_filter


class ImportUploadForm(FlaskForm):
    template = SelectField(
        "What kind of file is it?",
        widget=GovSelect(),
        choices=[],
        validate_choice=False,
        validators=[DataRequired(message="Select what kind of file it is")],
    )
    file = FileField("Payment file", widget=GovFileInput())
    submit = SubmitField("Upload and check the file", widget=GovSubmitInput())

    def validate_file(self, field):
        upload = field.data
        if upload is None or not getattr(upload, "filename", ""):
            raise ValidationError("Select the payment file")


class ImportFilterForm(FlaskForm):
    """The history's filters: a GET form (no CSRF, it changes nothing)."""

    class Meta:
        csrf = False

    status = SelectField(
        "Outcome", widget=GovSelect(), choices=[("", "Any outcome")] + list(STATUSES.items()), validate_choice=False
    )
    template = SelectField("Kind of file", widget=GovSelect(), choices=[], validate_choice=False)
    uploaded_by = SelectField("Uploaded by", widget=GovSelect(), choices=[], validate_choice=False)
    date_from = UkDateField("From date", validators=[Optional()])
    date_to = UkDateField("To date", validators=[Optional()])
    submit = SubmitField("Filter", widget=GovSubmitInput())

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The to date must be the same as or after the from date")


def _reason(label: str, required: str) -> TextAreaField:
    return TextAreaField(
        label,
        widget=GovTextArea(),
        filters=[strip_filter],
        description="This is recorded in the audit trail with your name",
        validators=[
            DataRequired(message=required),
            Length(max=MAX_REASON_LENGTH, message=f"The reason must be {MAX_REASON_LENGTH} characters or fewer"),
        ],
    )


class ReverseImportForm(FlaskForm):
    reason = _reason("Why are you reversing this import?", "Enter why you are reversing this import")
    submit = SubmitField("Reverse the import", widget=GovSubmitInput())


class AllowDuplicateForm(FlaskForm):
    reason = _reason("Why should this file be imported again?", "Enter why this file should be imported again")
    submit = SubmitField("Allow it to be imported again", widget=GovSubmitInput())


class ConfirmImportForm(FlaskForm):
    submit = SubmitField("Confirm import", widget=GovSubmitInput())


class RunAgainForm(FlaskForm):
    submit = SubmitField("Run again", widget=GovSubmitInput())
