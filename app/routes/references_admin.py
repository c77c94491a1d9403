"""Placeholder: filled in by the issue 3 work."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("references_admin", __name__)
