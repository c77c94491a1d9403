"""Refund forms: ask for a refund; approve or reject one."""

from __future__ import annotations

from flask_wtf import FlaskForm
from govuk_frontend_wtf.wtforms_widgets import GovRadioInput, GovSubmitInput, GovTextArea
from wtforms import HiddenField, RadioField, SubmitField, TextAreaField
from wtforms.validators import InputRequired, Length

from app.forms.fields import MoneyField, strip_filter


class RefundForm(FlaskForm):
    submission_key = HiddenField()
    amount = MoneyField("How much to refund", required_message="Enter how much to refund")
    reason = TextAreaField(
        "Why is it being refunded?",
        widget=GovTextArea(),
        filters=[strip_filter],
        validators=[
            InputRequired(message="Enter the reason for the refund"),
            Length(max=500, message="The reason must be 500 characters or fewer"),
        ],
    )
    submit = SubmitField("Ask for the refund", widget=GovSubmitInput())


class DecisionForm(FlaskForm):
    decision = RadioField(
        "Do you approve this refund?",
        widget=GovRadioInput(),
        choices=[("approve", "Yes, approve it"), ("reject", "No, reject it")],
        validators=[InputRequired(message="Select whether you approve the refund")],
    )
    note = TextAreaField(
        "Note (needed if you reject it)",
        widget=GovTextArea(),
        filters=[strip_filter],
        validators=[Length(max=500, message="The note must be 500 characters or fewer")],
    )
    submit = SubmitField("Save decision", widget=GovSubmitInput())
