"""Placeholder: filled in by the issue 3 work."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api_keys", __name__)
