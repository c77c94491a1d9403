"""Public pages: start, accessibility, cookies, privacy, feedback, health and the council logo."""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

from app.access import public
from app.db import database
from app.domain.council import CouncilSettings
from app.domain.feedback import leave_feedback
from app.domain.funds import Fund
from app.forms.feedback import FeedbackForm

bp = Blueprint("pages", __name__)


@bp.get("/")
@public
def start():
    citizen_funds = Fund.select().where(Fund.enabled & Fund.shown_to_citizens).order_by(Fund.name)
    return render_template("pages/start.html", citizen_funds=list(citizen_funds))


@bp.get("/accessibility")
@public
def accessibility():
    return render_template("pages/accessibility.html")


@bp.get("/cookies")
@public
def cookies():
    return render_template("pages/cookies.html")


@bp.get("/privacy")
@public
def privacy():
    return render_template("pages/privacy.html")


@bp.route("/feedback", methods=["GET", "POST"])
@public
def feedback():
    form = FeedbackForm()
    if request.method == "GET":
        form.page.data = _local_path(request.args.get("page", ""))
    if form.validate_on_submit():
        leave_feedback(
            rating=form.rating.data,
            comments=form.comments.data or "",
            page=_local_path(form.page.data),
            email=form.email.data or "",
            council_name=form.council_name.data or "",
        )
        return redirect(url_for("pages.feedback_sent"))
    return render_template("pages/feedback.html", form=form)


@bp.get("/feedback/sent")
@public
def feedback_sent():
    return render_template("pages/feedback_sent.html")


@bp.get("/healthz")
@public
def healthz():
    try:
        database.execute_sql("SELECT 1")
        return jsonify(status="ok", database="reachable")
    except Exception:
        return jsonify(status="error", database="unreachable"), 503


@bp.get("/council-logo")
@public
def council_logo():
    settings = CouncilSettings.current()
    if settings.logo_png:
        response = Response(bytes(settings.logo_png), mimetype=settings.logo_content_type or "image/png")
    else:
        response = send_from_directory(
            current_app.static_folder, "build/images/council-logo.svg", mimetype="image/svg+xml"
        )
    # The URL carries the logo version, so a changed logo is fetched afresh.
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def _local_path(value: str | None) -> str:
    value = (value or "").strip()
    return value[:300] if value.startswith("/") and not value.startswith("//") else ""
