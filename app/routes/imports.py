"""Payment file imports: history, upload and preview, confirm, progress, summary, problems, reversal.

The rules are in app/domain/imports/batches.py; this is HTTP only. Upload → preview (nothing
posted) → Confirm import (a POST; the batch is queued once however often it is pressed) → the
`run_import` job posts it all in one transaction → the page shows progress (htmx polls a
fragment every second; without JavaScript a Refresh link) and then the summary.
"""

from __future__ import annotations

import datetime as dt
import os

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.exceptions import RequestEntityTooLarge

from app.access import requires
from app.domain.errors import DomainError, NotFound
from app.domain.imports import batches
from app.domain.imports.batches import BatchFilters, DuplicateFile, ImportBatch
from app.domain.spreadsheets import Column, csv_chunks
from app.domain.ukdates import LONDON
from app.domain.users import Permission
from app.forms.imports import (
    AllowDuplicateForm,
    ConfirmImportForm,
    ImportFilterForm,
    ImportUploadForm,
    ReverseImportForm,
    RunAgainForm,
)
from app.routes import client_ip
from app.routes.paging import is_partial, paginate, render_list

bp = Blueprint("imports", __name__, url_prefix="/imports")

PROBLEM_COLUMNS = [
    Column("Line", "number"),
    Column("Outcome", "text"),
    Column("Problem", "text"),
    Column("Line in the file", "text"),
]


def _directory() -> str:
    return os.path.abspath(current_app.config["IMPORT_STORAGE_DIR"])


def _batch(batch_id: int) -> ImportBatch:
    try:
        return batches.visible_batch(batch_id)
    except NotFound:
        abort(404)


def _templates():
    from app.domain.imports.templates import ImportTemplate

    return list(ImportTemplate.active(payments_only=True))


def _megabytes(size: int) -> str:
    if size < 1024 * 1024:
        return f"{max(1, size // 1024):,} KB"
    return f"{size / (1024 * 1024):,.0f} MB"


def _upload_limit() -> None:
    """Payment files are bigger than anything else uploaded: their own limit, on the upload page only.

    Runs before every other before-request function, because CSRF protection reads the form
    (and so applies the size limit) before any view or blueprint hook runs.
    """
    if request.endpoint == "imports.new_import":
        request.max_content_length = current_app.config["IMPORT_MAX_BYTES"]


@bp.record_once
def _install_upload_limit(state) -> None:
    state.app.before_request_funcs.setdefault(None, []).insert(0, _upload_limit)


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------


@bp.get("")
@requires(Permission.VIEW_LEDGER)
def list_batches():
    from app.domain.imports.templates import ImportTemplate

    form = ImportFilterForm(request.args)
    form.template.choices = [("", "Any kind of file")] + [
        (str(t.id), t.name) for t in ImportTemplate.select().order_by(ImportTemplate.name)
    ]
    form.uploaded_by.choices = [("", "Anyone")] + [(str(u.id), u.name) for u in batches.uploaders()]
    valid = form.validate() if request.args else True
    filters = BatchFilters()
    if valid:
        filters = BatchFilters(
            status=form.status.data or "",
            template_id=int(form.template.data) if (form.template.data or "").isdigit() else None,
            uploaded_by_id=int(form.uploaded_by.data) if (form.uploaded_by.data or "").isdigit() else None,
            date_from=form.date_from.data,
            date_to=form.date_to.data,
        )
    page = paginate(batches.search(filters))
    return render_list(
        "imports/list.html",
        "imports/_results.html",
        form=form,
        page=page,
        has_errors=not valid,
        can_import=g.user.can(Permission.IMPORT_FILES),
    )


# ---------------------------------------------------------------------------
# Upload and preview
# ---------------------------------------------------------------------------


def _render_upload(form: ImportUploadForm, status: int = 200):
    limit = _megabytes(current_app.config["IMPORT_MAX_BYTES"])
    return make_response(render_template("imports/new.html", form=form, limit=limit), status)


@bp.route("/new", methods=["GET", "POST"])
@requires(Permission.IMPORT_FILES)
def new_import():
    try:
        form = ImportUploadForm()
        submitted = form.validate_on_submit()
    except RequestEntityTooLarge:
        form = ImportUploadForm(formdata=None)
        form.template.choices = [("", "Select a kind of file")] + [(str(t.id), t.name) for t in _templates()]
        limit = _megabytes(current_app.config["IMPORT_MAX_BYTES"])
        form.file.errors = [f"The selected file must be smaller than {limit}"]
        return _render_upload(form, 413)
    templates = _templates()
    form.template.choices = [("", "Select a kind of file")] + [(str(t.id), t.name) for t in templates]
    if submitted:
        template = next((t for t in templates if str(t.id) == form.template.data), None)
        if template is None:
            form.template.errors = list(form.template.errors) + ["Select what kind of file it is"]
        else:
            from app.domain.imports.formats import FileRejected

            upload = form.file.data
            try:
                result = batches.preview(
                    template, upload.filename, upload.stream, g.user, directory=_directory(), ip_address=client_ip()
                )
            except FileRejected as exc:
                form.file.errors = list(form.file.errors) + [f"The file cannot be imported: {exc.message}"]
            except DomainError as exc:
                target = form.template if exc.field == "template" else form.file
                target.errors = list(target.errors) + [exc.message]
            else:
                return redirect(url_for("imports.view_batch", batch_id=result.batch.id))
    return _render_upload(form)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error):
    """A file over the limit, found before the view ran: the upload page with a clear message."""
    if request.endpoint != "imports.new_import":
        return render_template("errors/413.html", error=error), 413
    form = ImportUploadForm(formdata=None)
    form.template.choices = [("", "Select a kind of file")] + [(str(t.id), t.name) for t in _templates()]
    form.file.errors = [f"The selected file must be smaller than {_megabytes(current_app.config['IMPORT_MAX_BYTES'])}"]
    return _render_upload(form, 413)


# ---------------------------------------------------------------------------
# One batch: preview, progress, summary
# ---------------------------------------------------------------------------


def _view_context(batch: ImportBatch) -> dict:
    directory = _directory()
    stale = batches.is_stale(batch, directory, current_app.config["IMPORT_STALE_SECONDS"])
    duplicate = (
        batches.duplicate_of(batch.content_sha256, excluding=batch.id) if batch.status in ("previewed",) else None
    )
    user = g.user
    return {
        "batch": batch,
        "progress": batches.progress(batch, directory),
        "stale": stale,
        "duplicate": duplicate,
        "duplicate_message": batches.duplicate_message(duplicate) if duplicate else "",
        "first_problems": list(batch.problems().limit(batches.PREVIEW_PROBLEMS)),
        "suspense_reasons": batch.suspense_reasons(),
        "can_import": user.can(Permission.IMPORT_FILES),
        "can_approve": user.can(Permission.APPROVE),
        "confirm_form": ConfirmImportForm(),
        "run_again_form": RunAgainForm(),
        "reversible": batch.status == "completed" and batches.why_not_reversible(batch) is None,
        "preview_limit": batches.PREVIEW_PROBLEMS,
    }


@bp.get("/<int:batch_id>")
@requires(Permission.VIEW_LEDGER)
def view_batch(batch_id: int):
    batch = _batch(batch_id)
    return render_template("imports/view.html", **_view_context(batch))


@bp.get("/<int:batch_id>/progress")
@requires(Permission.VIEW_LEDGER)
def batch_progress(batch_id: int):
    """The progress fragment htmx polls; once the import has finished, the whole page reloads."""
    batch = _batch(batch_id)
    if not is_partial():
        return redirect(url_for("imports.view_batch", batch_id=batch.id))
    if batch.status not in ("queued", "running") or batches.is_stale(
        batch, _directory(), current_app.config["IMPORT_STALE_SECONDS"]
    ):
        response = make_response("", 200)
        response.headers["HX-Refresh"] = "true"
        return response
    response = make_response(render_template("imports/_progress.html", **_view_context(batch)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<int:batch_id>/confirm")
@requires(Permission.IMPORT_FILES)
def confirm_batch(batch_id: int):
    batch = _batch(batch_id)
    form = ConfirmImportForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        queued = batches.confirm(batch, g.user, ip_address=client_ip())
    except DuplicateFile as exc:
        flash(exc.message, "info")
        return redirect(url_for("imports.view_batch", batch_id=batch.id))
    except DomainError as exc:
        flash(exc.message, "info")
        return redirect(url_for("imports.view_batch", batch_id=batch.id))
    if queued:
        _enqueue(batch.id)
    else:
        flash("This import had already been confirmed: it runs once", "info")
    return redirect(url_for("imports.view_batch", batch_id=batch.id))


def _enqueue(batch_id: int) -> None:
    from app.jobs import run_import

    run_import(batch_id, _directory())


@bp.post("/<int:batch_id>/run-again")
@requires(Permission.IMPORT_FILES)
def run_again(batch_id: int):
    batch = _batch(batch_id)
    form = RunAgainForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        queued = batches.run_again(
            batch,
            g.user,
            directory=_directory(),
            stale_seconds=current_app.config["IMPORT_STALE_SECONDS"],
            ip_address=client_ip(),
        )
    except DomainError as exc:
        flash(exc.message, "info")
        return redirect(url_for("imports.view_batch", batch_id=batch.id))
    if queued:
        _enqueue(batch.id)
    else:
        flash("This import cannot be run again now: it is running, or it has finished", "info")
    return redirect(url_for("imports.view_batch", batch_id=batch.id))


@bp.route("/<int:batch_id>/allow-duplicate", methods=["GET", "POST"])
@requires(Permission.APPROVE)
def allow_duplicate(batch_id: int):
    batch = _batch(batch_id)
    existing = batches.duplicate_of(batch.content_sha256, excluding=batch.id)
    if batch.status != "previewed" or existing is None or batch.override_duplicate_by_id is not None:
        flash("There is nothing to allow: this file is not waiting as a duplicate", "info")
        return redirect(url_for("imports.view_batch", batch_id=batch.id))
    form = AllowDuplicateForm()
    if form.validate_on_submit():
        try:
            batches.allow_duplicate(batch, g.user, form.reason.data, ip_address=client_ip())
        except DomainError as exc:
            form.reason.errors = list(form.reason.errors) + [exc.message]
        else:
            flash(f"{batch.file_name} can be imported again", "success")
            return redirect(url_for("imports.view_batch", batch_id=batch.id))
    return render_template(
        "imports/allow_duplicate.html",
        batch=batch,
        existing=existing,
        form=form,
        message=batches.duplicate_message(existing),
    )


@bp.route("/<int:batch_id>/reverse", methods=["GET", "POST"])
@requires(Permission.APPROVE)
def reverse_batch(batch_id: int):
    batch = _batch(batch_id)
    problem = batches.why_not_reversible(batch)
    if problem and request.method == "GET":
        flash(problem, "info")
        return redirect(url_for("imports.view_batch", batch_id=batch.id))
    form = ReverseImportForm()
    if form.validate_on_submit():
        try:
            count = batches.reverse_batch(batch, g.user, form.reason.data, ip_address=client_ip())
        except DomainError as exc:
            form.reason.errors = list(form.reason.errors) + [exc.message]
        else:
            flash(f"Import {batch.id} reversed: {count:,} reversal entries posted", "success")
            return redirect(url_for("imports.view_batch", batch_id=batch.id))
    elif problem:
        form.reason.errors = list(form.reason.errors) + [problem]
    return render_template("imports/reverse.html", batch=batch, form=form)


@bp.get("/<int:batch_id>/problems.csv")
@requires(Permission.VIEW_LEDGER)
def problems_csv(batch_id: int):
    """Every line that was not simply posted, and why: streamed, formula-safe."""
    batch = _batch(batch_id)
    chunks = csv_chunks(PROBLEM_COLUMNS, batches.problem_rows(batch))
    stamp = dt.datetime.now(LONDON).strftime("%Y-%m-%d-%H%M")
    response = Response(stream_with_context(chunks), mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="import-{batch.id}-problems-{stamp}.csv"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
