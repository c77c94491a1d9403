from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovCharacterCount, GovRadioInput, GovSubmitInput, GovTextInput
from wtforms import HiddenField, RadioField, StringField, SubmitField, TextAreaField
from wtforms.validators import Email, InputRequired, Length, Optional

from app.domain.feedback import MAX_LENGTH, RATINGS
from app.forms.fields import strip_filter


class FeedbackForm(FlaskForm):
    rating = RadioField(
        "Overall, how did you feel about the service you received today?",
        choices=list(RATINGS.items()),
        widget=GovRadioInput(),
        validators=[InputRequired(message="Select how satisfied you are with this service")],
    )
    comments = TextAreaField(
        "How could we improve this service?",
        widget=GovCharacterCount(),
        description="Do not include personal or financial information, like your account number or card details.",
        validators=[
            Optional(),
            Length(max=MAX_LENGTH, message=f"Your comments must be {MAX_LENGTH} characters or fewer"),
        ],
    )
    council_name = StringField(
        "Which council or organisation are you from? (optional)",
        widget=GovTextInput(),
        description="If you are testing this service for your council, tell us which one.",
        filters=[strip_filter],
        validators=[Optional(), Length(max=120, message="The council name must be 120 characters or fewer")],
    )
    email = StringField(
        "E-mail address (optional)",
        widget=GovTextInput(),
        description="Only if you would like us to reply to you.",
        filters=[strip_filter],
        validators=[
            Optional(),
            Email(
                message="Enter an e-mail address in the correct format, like name@example.com",
                check_deliverability=False,
            ),
            Length(max=320, message="E-mail address must be 320 characters or fewer"),
        ],
    )
    page = HiddenField()
    submit = SubmitField("Send feedback", widget=GovSubmitInput())
