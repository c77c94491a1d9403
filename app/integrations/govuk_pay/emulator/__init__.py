"""The built-in GOV.UK Pay emulator: a small Flask app that speaks GOV.UK Pay's public API.

Point the client's base URL at it and nothing else changes: the same /v1 endpoints, codes and
JSON, hosted card pages at next_url, signed webhooks, an injectable clock, fault injection.
For development and tests only: it refuses to start when IMS_ENV is "production", and it only
accepts test API keys (api_test_…).

    gunicorn 'app.integrations.govuk_pay.emulator:create_app()' --bind 127.0.0.1:5001 \
        --workers 1 --threads 8 --no-control-socket

(One worker: faults, the clock offset and the rate limiter live in the process. The state
itself is in SQLite, GOVUK_PAY_EMULATOR_DB, and survives restarts.)
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from jinja2 import BytecodeCache, ChoiceLoader, FileSystemLoader, PackageLoader, PrefixLoader
from werkzeug.exceptions import HTTPException

from app.integrations.govuk_pay.emulator.core import Emulator
from app.integrations.govuk_pay.emulator.settings import (
    Account,
    EmulatorSettings,
    FrozenClock,
    SystemClock,
    settings_from_environment,
)

__all__ = ["Account", "Emulator", "EmulatorSettings", "FrozenClock", "SystemClock", "create_app", "get_emulator"]

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
# The main app's static folder: the emulator's pages use its built CSS (app/static/build).
APP_STATIC = HERE.parents[2] / "static"


class _SharedBytecodeCache(BytecodeCache):
    """Compiled templates shared by every emulator app in the process (tests make one per test).

    Keys are the template name and a checksum of its source, and every emulator app compiles
    with the same environment options, so sharing is safe.
    """

    def __init__(self) -> None:
        self._compiled: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket) -> None:
        with self._lock:
            compiled = self._compiled.get(bucket.key)
        if compiled is not None:
            bucket.bytecode_from_string(compiled)

    def dump_bytecode(self, bucket) -> None:
        with self._lock:
            self._compiled[bucket.key] = bucket.bytecode_to_string()


_BYTECODE_CACHE = _SharedBytecodeCache()


def get_emulator(app: Flask) -> Emulator:
    return app.extensions["govuk_pay_emulator"]


def create_app(settings: EmulatorSettings | None = None) -> Flask:
    if settings is None:
        from dotenv import load_dotenv

        load_dotenv()
    if os.environ.get("IMS_ENV", "").strip().lower() == "production":
        raise RuntimeError(
            "The GOV.UK Pay emulator is for development and tests only: it refuses to run with IMS_ENV=production"
        )
    settings = settings or settings_from_environment()
    settings.check()

    app = Flask(__name__, static_folder=str(APP_STATIC), static_url_path="/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="govuk_pay_emulator_session",  # never the IMS's cookie, even on the same host
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.jinja_loader = ChoiceLoader(
        [
            FileSystemLoader(str(HERE / "templates")),
            PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
        ]
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.bytecode_cache = _BYTECODE_CACHE

    emulator = Emulator(settings)
    app.extensions["govuk_pay_emulator"] = emulator

    from app.integrations.govuk_pay.emulator import api, control, pages

    app.jinja_env.globals["csp_nonce"] = pages.csp_nonce
    csrf = CSRFProtect(app)
    # The API and the control endpoints take JSON from programs, never a browser's cookies.
    csrf.exempt(api.bp)
    csrf.exempt(control.bp)
    csrf.exempt(pages.secure_post)
    app.register_blueprint(api.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(pages.bp)
    _init_errors(app)
    app.wsgi_app = api.raise_dropped_connections(app.wsgi_app)

    if settings.background_webhooks:
        emulator.start_background_delivery()
    return app


def _is_page(path: str) -> bool:
    return path.startswith(("/secure", "/card_details"))


def _init_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        paragraphs = [
            "This page was open too long or was sent from somewhere else.",
            "Go back to the service you were using and start your payment again.",
        ]
        return render_template(
            "govuk_pay_emulator/message.html", page_title="This page has expired", paragraphs=paragraphs, payment=None
        ), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if _is_page(request.path) and error.code == 404:
            return render_template(
                "govuk_pay_emulator/message.html",
                page_title="Page not found",
                paragraphs=["If you typed the web address, check it is correct."],
                payment=None,
            ), 404
        # Dropwizard's answer for routes GOV.UK Pay does not have.
        response = jsonify({"code": error.code, "message": f"HTTP {error.code} {error.name}"})
        response.status_code = error.code or 500
        return response

    @app.errorhandler(Exception)
    def server_error(error: Exception):
        log.exception("GOV.UK Pay emulator: unhandled error on %s %s", request.method, request.path)
        response = jsonify({"code": "P0999", "description": "GOV.UK Pay is unavailable"})
        response.status_code = 500
        return response
