"""The application factory."""

from __future__ import annotations

import logging
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask, g, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from govuk_frontend_wtf.main import WTFormsHelpers
from jinja2 import ChoiceLoader, FileSystemLoader, PackageLoader, PrefixLoader
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from app.config import Config, load_config
from app.db import bind_database, database

csrf = CSRFProtect()
log = logging.getLogger(__name__)


def create_app(config: Config | str | None = None) -> Flask:
    if config is None or isinstance(config, str):
        if config != "testing":
            load_dotenv()
        config = load_config(config)
    config.validate()

    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(config)
    if config.PROXY_COUNT:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.PROXY_COUNT, x_proto=config.PROXY_COUNT)

    app.jinja_loader = ChoiceLoader(
        [
            PackageLoader("app"),
            PrefixLoader(
                {
                    "govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja"),
                    "govuk_frontend_wtf": PackageLoader("govuk_frontend_wtf"),
                    # The accessibility statement lives with the accessibility work, not the templates
                    "accessibility": FileSystemLoader(str(Path(app.root_path).parent / "accessibility")),
                }
            ),
        ]
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    WTFormsHelpers(app)
    csrf.init_app(app)

    bind_database(app.config["DATABASE_URL"])
    _init_request_hooks(app)

    from app.security import init_security
    from app.templating import init_templating

    init_security(app)
    init_templating(app)

    from app.routes import register_blueprints

    register_blueprints(app)
    from app.routes import api as api_routes
    from app.routes import webhooks as webhook_routes

    # API clients authenticate with bearer keys, never cookies, so CSRF cannot apply to them;
    # GOV.UK Pay's webhooks are signed (Pay-Signature) instead.
    csrf.exempt(api_routes.bp)
    csrf.exempt(webhook_routes.bp)
    _init_govuk_pay(app)
    _init_errors(app)
    _check_every_route_declares_access(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def _init_govuk_pay(app: Flask) -> None:
    from app.integrations.govuk_pay.accounts import PayGateway

    app.extensions["govuk_pay"] = PayGateway(
        app.config["GOVUK_PAY_ACCOUNTS"],
        app.config["GOVUK_PAY_BASE_URL"],
        transport=app.config.get("GOVUK_PAY_TRANSPORT"),
    )


def _init_request_hooks(app: Flask) -> None:
    from app.access import load_user

    @app.before_request
    def open_db_and_load_user():
        database.connect(reuse_if_open=True)
        if request.endpoint == "static":
            g.user = None
            return None
        load_user(app.config["SESSION_IDLE_MINUTES"])
        return _force_password_change()

    @app.teardown_request
    def close_db(exc):
        if not app.config.get("TESTING") and not database.is_closed() and not database.in_transaction():
            database.close()


def _force_password_change():
    from flask import current_app, redirect, url_for

    from app.access import PUBLIC

    user = g.get("user")
    if user is None or not user.must_change_password:
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    access = str(getattr(view, "access", ""))
    # Public pages and the API (bearer keys, not sessions) are not held back; staff pages wait for the new password.
    if request.endpoint in {"auth.change_password", "auth.sign_out"} or access == PUBLIC or access.startswith("api:"):
        return None
    return redirect(url_for("auth.change_password"))


def _init_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("errors/csrf.html"), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        if request.path.startswith("/api/"):
            # API clients get JSON for every error, routing errors (404, 405) included.
            from app.access import api_error

            return api_error(error.code or 500, error.name.lower().replace(" ", "_"), error.description or error.name)
        template = {
            400: "errors/400.html",
            403: "errors/403.html",
            404: "errors/404.html",
            405: "errors/404.html",
            413: "errors/413.html",
        }.get(error.code, "errors/500.html")
        return render_template(template, error=error), error.code

    @app.errorhandler(Exception)
    def server_error(error):
        log.exception("Unhandled error on %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            from app.access import api_error

            return api_error(500, "server_error", "Something went wrong on our side. Nothing was changed.")
        try:
            database.rollback() if database.in_transaction() else None
        except Exception:  # the connection itself may be broken
            log.warning("Could not roll back after an error", exc_info=True)
        return render_template("errors/500.html"), 500


def _check_every_route_declares_access(app: Flask) -> None:
    missing = [
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint != "static" and getattr(view, "access", None) is None
    ]
    if missing:
        raise RuntimeError(f"Routes without an access declaration (public/signed_in/requires): {missing}")
