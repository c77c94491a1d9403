"""Blueprints: HTTP, forms and templates only. Rules live in app/domain."""

from __future__ import annotations

from flask import Flask, request


def client_ip() -> str:
    return request.remote_addr or ""


def register_blueprints(app: Flask) -> None:
    from app.routes import (
        accounts,
        admin,
        api,
        api_keys,
        audit,
        auth,
        corrections,
        exports,
        feedback_admin,
        import_admin,
        imports,
        ledger,
        pages,
        pay,
        payments,
        references_admin,
        refunds,
        staff,
        staff_payments,
        suspense,
        users,
        webhooks,
    )

    for module in (
        pages,
        auth,
        staff,
        admin,
        references_admin,
        import_admin,
        accounts,
        users,
        api_keys,
        api,
        audit,
        feedback_admin,
        ledger,
        corrections,
        pay,
        payments,
        webhooks,
        staff_payments,
        refunds,
        suspense,
        exports,
        imports,
    ):
        app.register_blueprint(module.bp)
