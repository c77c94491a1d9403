"""Blueprints: HTTP, forms and templates only. Rules live in app/domain."""

from __future__ import annotations

from flask import Flask, request


def client_ip() -> str:
    return request.remote_addr or ""


def register_blueprints(app: Flask) -> None:
    from app.routes import admin, audit, auth, feedback_admin, ledger, pages, staff, users

    for module in (pages, auth, staff, admin, users, audit, feedback_admin, ledger):
        app.register_blueprint(module.bp)
