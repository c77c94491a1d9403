"""Flask CLI commands: `flask --app wsgi <command>` (the Makefile and Procfile use these)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask
from playhouse.migrations import Runner

from app.db import database

MIGRATIONS = str(Path(__file__).resolve().parent.parent / "migrations")


def migrate_database() -> list[str]:
    """Apply every pending numbered migration in migrations/. Returns the names applied."""
    return Runner(database.obj, directory=MIGRATIONS).up()


def register_cli(app: Flask) -> None:
    @app.cli.command("migrate")
    def migrate_command():
        """Apply pending database migrations."""
        applied = migrate_database()
        click.echo(f"Applied: {', '.join(applied)}" if applied else "The database is up to date.")

    @app.cli.command("make-migration")
    @click.argument("name")
    def make_migration_command(name):
        """Write the next migration from the difference between the models and the database."""
        from playhouse.migrations import template
        from playhouse.schema_diff import diff_models

        from app.models import ALL_MODELS

        diff = diff_models(database.obj, ALL_MODELS)
        if not diff:
            click.echo("The models match the database: nothing to write.")
            return
        path = Runner(database.obj, directory=MIGRATIONS).create(name, body=template(diff))
        click.echo(f"Wrote {path}: read it, then commit it.")

    @app.cli.command("seed-demo")
    @click.option("--entries", default=400, show_default=True, help="How many demo payments to post.")
    def seed_demo_command(entries):
        """Create the demo council: settings, funds, methods, VAT, offices, users and payments."""
        from app.demo import DEMO_PASSWORD, DEMO_USERS, seed_configuration, seed_ledger

        with database.atomic():
            seed_configuration()
        created = seed_ledger(entries=entries)
        click.echo(f"Demo council ready ({created} new demo payments). Sign in with password {DEMO_PASSWORD} as:")
        for email, _, roles, _ in DEMO_USERS:
            click.echo(f"  {email}  ({', '.join(roles)})")

    @app.cli.command("create-admin")
    @click.argument("email")
    @click.argument("name")
    def create_admin_command(email, name):
        """Create a system administrator and print their temporary password (first set-up)."""
        from app.domain.errors import DomainError
        from app.domain.users import create_user

        try:
            _, password = create_user(None, email=email, name=name, roles=["system_administrator"], fund_group_ids=[])
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        click.echo(f"Created {email}. Temporary password (shown once): {password}")

    @app.cli.command("verify-audit")
    def verify_audit_command():
        """Check the audit trail's hash chain; exit 1 and name the first broken link if it is broken."""
        from app.domain.audit import verify_chain

        report = verify_chain()
        if report.ok:
            click.echo(f"The audit trail is intact: {report.checked} events checked.")
            return
        click.echo(
            f"The audit trail is broken at event {report.broken_seq}: {report.reason}. "
            f"{report.checked} events before it are intact.",
            err=True,
        )
        sys.exit(1)

    @app.cli.command("load-accounts")
    @click.option(
        "--fund", "fund_code", default=None, help="Load every row into this fund (else the file has a fund column)."
    )
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def load_accounts_command(fund_code, path):
        """Load account holders from a back-office CSV extract (upsert); exit 1 if the file is refused."""
        from app.domain.errors import DomainError
        from app.domain.funds import Fund
        from app.domain.references import load_account_holders_csv

        fund = None
        if fund_code:
            fund = Fund.get_or_none(Fund.code == fund_code.strip().upper())
            if fund is None:
                click.echo(f"There is no fund with the code {fund_code}", err=True)
                sys.exit(1)
        try:
            with path.open("rb") as file:
                report = load_account_holders_csv(fund, file, None, file_name=path.name)
        except DomainError as exc:
            click.echo(f"The file was refused: {exc.message}", err=True)
            sys.exit(1)
        click.echo(
            f"Rows read: {report.rows:,}. Added: {report.inserted:,}. Updated: {report.updated:,}. "
            f"Unchanged: {report.unchanged:,}. Rows with errors: {report.error_count:,}."
        )
        if report.format_warning_count:
            click.echo(
                f"References that do not match the fund's formats (loaded anyway): {report.format_warning_count:,}"
            )
        if report.ignored_columns:
            click.echo(f"Columns ignored: {', '.join(report.ignored_columns)}")
        for error in report.errors[:20]:
            click.echo(f"  {error}")
        if report.error_count > 20:
            click.echo(f"  … and {report.error_count - 20:,} more")
        if report.fatal:
            click.echo(f"The load stopped part way: {report.fatal}", err=True)
            sys.exit(1)

    @app.cli.command("import-file")
    @click.option(
        "--template", "template_name", required=True, help="The import template's name, e.g. 'allpay daily file'."
    )
    @click.option(
        "--user", "email", default=None, help="Who imports it (a user who may import files); default: the first one."
    )
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    def import_file_command(template_name, email, path):
        """Preview a payment file, print what will happen, then import it; exit 1 if it is rejected or a duplicate."""
        import os

        from peewee import fn

        from app.domain.errors import DomainError
        from app.domain.imports import batches
        from app.domain.imports.formats import FileRejected
        from app.domain.imports.templates import ImportTemplate
        from app.domain.money import format_pence
        from app.domain.users import Permission, User

        template = ImportTemplate.get_or_none(fn.LOWER(ImportTemplate.name) == template_name.strip().lower())
        if template is None:
            names = ", ".join(t.name for t in ImportTemplate.active(payments_only=True))
            click.echo(f"There is no import template called {template_name!r}. Templates: {names}", err=True)
            sys.exit(1)
        if email:
            user = User.get_or_none(fn.LOWER(User.email) == email.strip().lower())
        else:
            user = next(
                (u for u in User.select().order_by(User.id) if u.enabled and u.can(Permission.IMPORT_FILES)), None
            )
        if user is None or not user.can(Permission.IMPORT_FILES):
            click.echo("Name a user who may import files with --user EMAIL", err=True)
            sys.exit(1)
        directory = os.path.abspath(app.config["IMPORT_STORAGE_DIR"])
        try:
            with path.open("rb") as data:
                result = batches.preview(template, path.name, data, user, directory=directory)
        except FileRejected as exc:
            click.echo(f"The file was rejected: {exc.message}", err=True)
            sys.exit(1)
        except DomainError as exc:
            click.echo(f"The file cannot be imported: {exc.message}", err=True)
            sys.exit(1)
        batch = result.batch
        click.echo(
            f"Import {batch.id}: {batch.row_count:,} lines, {format_pence(batch.file_total_pence)}. "
            f"To post: {batch.posted_count:,} ({format_pence(batch.posted_total_pence)}). "
            f"To suspense: {batch.suspense_count:,} ({format_pence(batch.suspense_total_pence)}). "
            f"Skipped: {batch.skipped_count:,}. Rejected: {batch.rejected_count:,}."
        )
        for reason, count in batch.suspense_reasons():
            click.echo(f"  Suspense, {count:,} line{'s' if count != 1 else ''}: {reason}")
        for problem in result.first_problems:
            click.echo(f"  Line {problem.line_number} ({problem.kind_name.lower()}): {problem.message}")
        try:
            if not batches.confirm(batch, user):
                click.echo("This import had already been confirmed.", err=True)
                sys.exit(1)
        except batches.DuplicateFile as exc:
            click.echo(exc.message, err=True)
            sys.exit(1)
        batch = batches.run_batch(batch.id, directory=directory)
        if batch.status != "completed":
            click.echo(f"Import {batch.id} failed: {batch.failure_message}", err=True)
            sys.exit(1)
        click.echo(
            f"Imported: {batch.posted_count:,} posted ({format_pence(batch.posted_total_pence)}), "
            f"{batch.suspense_count:,} to suspense ({format_pence(batch.suspense_total_pence)})."
        )

    @app.cli.command("export-run")
    @click.argument("template_code")
    @click.option("--until", "until_text", default=None, help="Cut-off business date, YYYY-MM-DD (default: yesterday).")
    def export_run_command(template_code, until_text):
        """Run an export template (for scheduled transfers); print the file name, count, total and SHA-256.

        Exit 0 when a batch was made or there was nothing new to export, 1 when the run was refused.
        """
        import datetime as dt

        from app.db import utcnow
        from app.domain.errors import DomainError
        from app.domain.exports.runs import NothingToExport, run_export
        from app.domain.exports.templates import ExportTemplate
        from app.domain.money import format_pence
        from app.domain.ukdates import business_date

        template = ExportTemplate.get_or_none(ExportTemplate.code == template_code.strip().upper())
        if template is None:
            click.echo(f"There is no export template with the code {template_code}", err=True)
            sys.exit(1)
        try:
            until = dt.date.fromisoformat(until_text) if until_text else business_date(utcnow()) - dt.timedelta(days=1)
        except ValueError:
            click.echo("Give --until as a date like 2026-03-31", err=True)
            sys.exit(1)
        try:
            batch = run_export(template, until, trigger="cli")
        except NothingToExport as exc:
            click.echo(exc.message)
            return
        except DomainError as exc:
            click.echo(f"The export was refused: {exc.message}", err=True)
            sys.exit(1)
        click.echo(
            f"Batch {batch.id}: {batch.file_name}, {batch.entry_count:,} transactions, "
            f"{format_pence(batch.total_pence)}, SHA-256 {batch.sha256}"
        )
