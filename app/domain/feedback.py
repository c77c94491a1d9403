"""Feedback from anyone using the service (the phase banner links here).

This is how user-forum testers of the model office report back: administrators read it
in the service.
"""

from __future__ import annotations

from peewee import CharField, DateTimeField, TextField

from app.db import BaseModel, utcnow
from app.domain.errors import DomainError

RATINGS = {
    "very_satisfied": "Very satisfied",
    "satisfied": "Satisfied",
    "neither": "Neither satisfied nor dissatisfied",
    "dissatisfied": "Dissatisfied",
    "very_dissatisfied": "Very dissatisfied",
}
MAX_LENGTH = 5000


class Feedback(BaseModel):
    created_at = DateTimeField(default=utcnow, index=True)
    rating = CharField(max_length=30)
    comments = TextField(default="")
    page = CharField(max_length=300, default="")
    email = CharField(max_length=320, default="")
    council_name = CharField(max_length=120, default="")  # testers from other councils say who they are

    @property
    def rating_text(self) -> str:
        return RATINGS.get(self.rating, self.rating)


def leave_feedback(*, rating: str, comments: str, page: str = "", email: str = "", council_name: str = "") -> Feedback:
    if rating not in RATINGS:
        raise DomainError("Select how satisfied you are with this service", "rating")
    if len(comments or "") > MAX_LENGTH:
        raise DomainError(f"Your comments must be {MAX_LENGTH} characters or fewer", "comments")
    return Feedback.create(
        rating=rating,
        comments=(comments or "").strip(),
        page=(page or "")[:300],
        email=(email or "").strip(),
        council_name=(council_name or "").strip(),
    )
