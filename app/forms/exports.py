"""Forms for export templates, runs and voids.

The field list works without JavaScript: the form shows the template's fields plus one empty row
per part, and "Add another field" buttons post the form back with one more empty row (nothing is
saved until "Save"). A row whose "contains" is "Not used" is ignored.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import (
    GovCheckboxesInput,
    GovCheckboxInput,
    GovRadioInput,
    GovSelect,
    GovSubmitInput,
    GovTextArea,
    GovTextInput,
)
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, Optional, Regexp

from app.domain.exports.formats import (
    ALIGNS,
    BATCH_SOURCES,
    DELIMITER_NAMES,
    DETAIL_SOURCES,
    ENCODINGS,
    FORMATS,
    JOURNAL_SOURCES,
    KINDS,
    SIGNS,
    UNITS,
)
from app.domain.exports.templates import SCHEDULES
from app.forms.fields import UkDateField, strip_filter


def source_choices() -> list[tuple[str, str]]:
    choices = [("", "Not used")]
    seen = set()
    for key, source in DETAIL_SOURCES.items():
        label = source.label
        if key in JOURNAL_SOURCES:
            label += " (journal: " + JOURNAL_SOURCES[key].label.lower() + ")"
        choices.append((key, label))
        seen.add(key)
    for key, source in JOURNAL_SOURCES.items():
        if key not in seen:
            choices.append((key, f"Journal: {source.label.lower()}"))
            seen.add(key)
    for key, source in BATCH_SOURCES.items():
        if key not in seen:
            choices.append((key, source.label))
    return choices


class FieldRowForm(Form):
    """One field of a line, header or trailer (a sub-form: the outer form carries the CSRF token)."""

    source = SelectField("Contains", widget=GovSelect(), choices=source_choices(), validate_choice=False)
    heading = StringField("Column heading", widget=GovTextInput(), filters=[strip_filter])
    value = StringField(
        "Fixed text or date format",
        widget=GovTextInput(),
        description="Fixed text, or a date format like %d/%m/%Y (blank: 2026-03-02)",
    )
    unit = SelectField("Amounts in", widget=GovSelect(), choices=list(UNITS.items()), validate_choice=False)
    sign = SelectField("Sign", widget=GovSelect(), choices=list(SIGNS.items()), validate_choice=False)
    width = StringField("Width (fixed width only)", widget=GovTextInput(), filters=[strip_filter])
    align = SelectField("Alignment", widget=GovSelect(), choices=list(ALIGNS.items()), validate_choice=False)
    pad = StringField("Padding character", widget=GovTextInput(), default=" ")


class ExportTemplateForm(FlaskForm):
    code = StringField(
        "Code",
        widget=GovTextInput(),
        description="Up to 10 letters or numbers, no spaces. It cannot be changed later.",
        filters=[strip_filter, lambda v: v.upper() if isinstance(v, str) else v],
        validators=[
            InputRequired(message="Enter a code"),
            Regexp(r"^[A-Z0-9]{1,10}$", message="The code must be 1 to 10 letters or numbers, with no spaces"),
        ],
    )
    name = StringField(
        "Name",
        widget=GovTextInput(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter the name of the export template"),
            Length(max=120, message="The name must be 120 characters or fewer"),
        ],
    )
    description = TextAreaField("Description (optional)", widget=GovTextArea(), filters=[strip_filter])
    kind = RadioField(
        "What each line is",
        widget=GovRadioInput(),
        choices=list(KINDS.items()),
        validators=[InputRequired(message="Choose what each line of the file is")],
    )
    file_format = RadioField(
        "File format",
        widget=GovRadioInput(),
        choices=list(FORMATS.items()),
        validators=[InputRequired(message="Choose the file format")],
    )
    funds = SelectMultipleField(
        "Funds", widget=GovCheckboxesInput(), description="Leave all unticked to export every fund.", choices=[]
    )
    methods = SelectMultipleField(
        "Methods of payment",
        widget=GovCheckboxesInput(),
        description="Leave all unticked to export every method.",
        choices=[],
    )
    sources = SelectMultipleField(
        "Where the transactions came from",
        widget=GovCheckboxesInput(),
        description="Leave all unticked to export every kind.",
        choices=[],
    )
    delimiter = RadioField(
        "CSV delimiter",
        widget=GovRadioInput(),
        choices=[(k, k.capitalize() if k != "pipe" else "Vertical bar (|)") for k in DELIMITER_NAMES],
        default="comma",
        validators=[InputRequired(message="Choose the CSV delimiter")],
    )
    quote_all = BooleanField(
        "Put quotes round every CSV value (otherwise only where needed)", widget=GovCheckboxInput()
    )
    header_row = BooleanField("Start a CSV file with a row of column headings", widget=GovCheckboxInput())
    line_ending = RadioField(
        "Line ending",
        widget=GovRadioInput(),
        choices=[("crlf", "Windows (CR LF)"), ("lf", "Unix (LF)")],
        default="crlf",
        validators=[InputRequired(message="Choose the line ending")],
    )
    encoding = RadioField(
        "Characters",
        widget=GovRadioInput(),
        choices=list(ENCODINGS.items()),
        default="utf-8",
        validators=[InputRequired(message="Choose the character set")],
    )
    allow_empty = BooleanField(
        "Make a file (with its header and trailer) even when there is nothing to export", widget=GovCheckboxInput()
    )
    file_name_pattern = StringField(
        "File name",
        widget=GovTextInput(),
        description="Use {date:%Y%m%d} for the date it runs, {until:%Y%m%d} for the cut-off date, {seq} or {seq:04d} "
        "for the file's sequence number and {code} for the template's code, like CTAX_{date:%Y%m%d}_{seq}.csv",
        filters=[strip_filter],
        validators=[InputRequired(message="Enter a file name pattern, like CTAX_{date:%Y%m%d}_{seq}.csv")],
    )
    schedule = RadioField(
        "When it runs",
        widget=GovRadioInput(),
        choices=list(SCHEDULES.items()),
        default="manual",
        validators=[InputRequired(message="Choose when the export runs")],
    )
    schedule_time = StringField(
        "Time to run each day (UK time)",
        widget=GovTextInput(),
        description="For example, 06:30. Each run exports everything up to the end of the day before.",
        filters=[strip_filter],
        validators=[Optional()],
    )
    contra_ledger_code = StringField(
        "Contra account (bank or cash control) ledger code",
        widget=GovTextInput(),
        description="Journals only: the total is debited here.",
        filters=[strip_filter],
    )
    contra_cost_centre = StringField("Contra cost centre (optional)", widget=GovTextInput(), filters=[strip_filter])
    vat_ledger_code = StringField(
        "VAT output account ledger code",
        widget=GovTextInput(),
        description="Journals only: VAT is credited here.",
        filters=[strip_filter],
    )
    vat_cost_centre = StringField("VAT cost centre (optional)", widget=GovTextInput(), filters=[strip_filter])
    journal_description = StringField(
        "Journal line description",
        widget=GovTextInput(),
        description="{date} becomes the posting date, like Income {date}",
        filters=[strip_filter],
    )
    fields = FieldList(FormField(FieldRowForm), min_entries=1, max_entries=40)
    header = FieldList(FormField(FieldRowForm), min_entries=0, max_entries=40)
    trailer = FieldList(FormField(FieldRowForm), min_entries=0, max_entries=40)
    add_field = SubmitField("Add another line field", widget=GovSubmitInput())
    add_header = SubmitField("Add another header field", widget=GovSubmitInput())
    add_trailer = SubmitField("Add another trailer field", widget=GovSubmitInput())
    submit = SubmitField("Save", widget=GovSubmitInput())


class PreviewForm(FlaskForm):
    """The cut-off date (a GET form: previewing changes nothing)."""

    class Meta:
        csrf = False

    until = UkDateField(
        "Cut-off date",
        description="Transactions with a business date up to and including this day",
        validators=[InputRequired(message="Enter the cut-off date")],
    )


class RunForm(FlaskForm):
    until = StringField("Cut-off date", validators=[InputRequired(message="Enter the cut-off date")])
    submit = SubmitField("Run the export", widget=GovSubmitInput())


class VoidForm(FlaskForm):
    reason = TextAreaField(
        "Why are you voiding this batch?",
        widget=GovTextArea(),
        description="For example, the back office rejected the file. Its transactions will go into the next run.",
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter why the batch is being voided"),
            Length(max=500, message="The reason must be 500 characters or fewer"),
        ],
    )
    submit = SubmitField("Void the batch", widget=GovSubmitInput())


class ToggleForm(FlaskForm):
    submit = SubmitField("Confirm", widget=GovSubmitInput())


class HistoryFilterForm(FlaskForm):
    class Meta:
        csrf = False

    template = SelectField("Template", widget=GovSelect(), choices=[], validate_choice=False)
    status = SelectField(
        "Status",
        widget=GovSelect(),
        choices=[("", "Any"), ("exported", "Exported"), ("void", "Void")],
        validate_choice=False,
    )
    date_from = UkDateField("Made from", validators=[Optional()])
    date_to = UkDateField("Made to", validators=[Optional()])
