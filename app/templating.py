"""Template filters and the values every page needs (council branding, signed-in user, navigation)."""

from __future__ import annotations

import datetime as dt

from flask import Flask, g, request, url_for

from app.domain.money import format_pence
from app.domain.ukdates import to_london
from app.domain.users import Permission
from app.domain.vat import format_rate

# Staff navigation: (label, endpoint, permission needed)
STAFF_NAVIGATION = [
    ("Home", "staff.home", None),
    ("Take a payment", "staff_payments.new_payment", Permission.TAKE_PAYMENTS),
    ("Transactions", "ledger.entries", Permission.VIEW_LEDGER),
    ("Card payments", "payments.attempts", Permission.VIEW_LEDGER),
    ("Corrections", "corrections.list_corrections", Permission.VIEW_LEDGER),
    ("Refunds", "refunds.list_refunds", Permission.VIEW_LEDGER),
    ("Suspense", "suspense.list_items", Permission.VIEW_LEDGER),
    ("Imports", "imports.list_batches", Permission.VIEW_LEDGER),
    ("Exports", "exports.history", Permission.VIEW_LEDGER),
    ("Accounts", "accounts.search", Permission.VIEW_LEDGER),
    ("Settings", "admin.settings_index", Permission.VIEW_CONFIG),
    ("Users", "users.list_users", Permission.MANAGE_USERS),
    ("Audit trail", "audit.events", Permission.VIEW_AUDIT),
    ("Feedback", "feedback_admin.list_feedback", Permission.VIEW_FEEDBACK),
]


def london_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return to_london(value).strftime("%-d %B %Y at %-I:%M%p").replace("AM", "am").replace("PM", "pm")


def uk_date(value: dt.date | None) -> str:
    return "" if value is None else value.strftime("%-d %B %Y")


def init_templating(app: Flask) -> None:
    app.jinja_env.filters["money"] = format_pence
    app.jinja_env.filters["london_datetime"] = london_datetime
    app.jinja_env.filters["uk_date"] = uk_date
    app.jinja_env.filters["vat_rate"] = format_rate
    app.jinja_env.globals["Permission"] = Permission

    @app.context_processor
    def inject_common():
        from app.domain.council import CouncilSettings

        council = g.get("council")
        if council is None:
            try:
                council = CouncilSettings.current()
            except Exception:  # database unavailable: error pages must still render
                council = CouncilSettings()
            g.council = council
        user = g.get("user")
        navigation = []
        if user is not None and not user.must_change_password:
            for label, endpoint, permission in STAFF_NAVIGATION:
                if permission is None or user.can(permission):
                    href = url_for(endpoint)
                    navigation.append(
                        {
                            "text": label,
                            "href": href,
                            "active": request.path == href or (href != "/staff" and request.path.startswith(href)),
                        }
                    )
        return {"council": council, "current_user": user, "staff_navigation": navigation, "Permission": Permission}
