"""Exports end to end, on SQLite and PostgreSQL: presets, exactly once, void, journal, pages, CLI.

Most tests run inside the shared demo database's rolled-back transaction (`app`); the race test
needs real commits and threads with their own connections (`fresh_database`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import threading
from decimal import Decimal

import pytest
from peewee import IntegrityError

from app.db import database, utcnow
from app.domain.audit import AuditEvent
from app.domain.exports import runs
from app.domain.exports.runs import ExportBatch, ExportedEntry, NothingToExport
from app.domain.exports.templates import PRESETS, ExportTemplate, change_template, create_template, ensure_presets
from app.domain.funds import Fund
from app.domain.ledger import LedgerEntry, PostingRequest, post
from app.domain.methods import MethodOfPayment
from app.domain.transaction_search import timeline
from app.domain.ukdates import business_date
from app.domain.users import User
from tests.pages import DEMO_EMAILS, csrf_token


def today() -> dt.date:
    return business_date(utcnow())


def _template(code: str) -> ExportTemplate:
    return ExportTemplate.get(ExportTemplate.code == code)


def _user(who: str) -> User:
    return User.get(User.email == DEMO_EMAILS[who])


def _post(amount: int, fund: str = "CTAX", key: str = "export-test", narrative: str = "") -> LedgerEntry:
    return post(
        PostingRequest(
            idempotency_key=key,
            fund=Fund.by_code(fund),
            account_reference="12345678",
            amount_pence=amount,
            method=MethodOfPayment.by_code("CASH"),
            source="staff_payment",
            narrative=narrative,
        )
    ).entry


def _rows(batch: ExportBatch) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(runs.file_bytes(batch)).decode("utf-8"))))


def test_presets_exist_once_and_ensure_presets_is_idempotent(app):
    codes = {p["code"] for p in PRESETS}
    assert codes <= {t.code for t in ExportTemplate.select()}
    assert ensure_presets() == []
    assert ExportTemplate.select().where(ExportTemplate.code.in_(list(codes))).count() == len(codes)


def test_a_run_exports_every_entry_once_with_its_file_and_hash(app):
    template = _template("LOCALGOV15")
    expected = LedgerEntry.select().where(LedgerEntry.business_date <= today())
    count, total = LedgerEntry.totals(expected)
    preview = runs.preview(template, today())
    assert (preview.entry_count, preview.total_pence) == (count, total)
    assert preview.first_lines[0].startswith("TransactionReference,InternalReference,PspReference")
    batch = runs.run_export(template, today(), actor=_user("finance"))
    assert (batch.entry_count, batch.total_pence, batch.line_count) == (count, total, count)
    data = b"".join(runs.file_bytes(batch))
    assert hashlib.sha256(data).hexdigest() == batch.sha256 and len(data) == batch.size_bytes
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert len(rows) == count + 1
    assert sum(Decimal(r[10]) for r in rows[1:]) * 100 == total
    assert {r[0] for r in rows[1:]} == {e.receipt_reference for e in expected}
    # Regenerating from the batch's entries and stored definition gives the same bytes.
    assert b"".join(runs.regenerate(batch)) == data
    assert (
        AuditEvent.select()
        .where((AuditEvent.action == "export.run") & (AuditEvent.object_id == str(batch.id)))
        .exists()
    )


def test_running_twice_exports_nothing_new_then_only_the_new_entry(app):
    template = _template("CTAXDAILY")
    first = runs.run_export(template, today())
    with pytest.raises(NothingToExport):
        runs.run_export(template, today())
    entry = _post(4321, narrative="=HYPERLINK(1)")
    second = runs.run_export(template, today())
    assert (second.entry_count, second.total_pence, second.sequence) == (1, 4321, first.sequence + 1)
    rows = _rows(second)
    assert rows[0][0] == "H" and rows[-1] == ["T", "1", "43.21"]
    assert rows[1][1:3] == ["12345678", "43.21"] and rows[1][5] == entry.receipt_reference
    # A preset filtered to a fund exports nothing from other funds.
    assert {
        e.fund.code
        for e in LedgerEntry.select()
        .join(ExportedEntry, on=(ExportedEntry.entry == LedgerEntry.id))
        .where(ExportedEntry.template == template.id)
    } == {"CTAX"}  # noqa: E501


def test_control_totals_and_the_journal_balances(app):
    _post(12000, fund="PCN", key="export-test-pcn")
    template = _template("GLJOURNAL")
    for fund in Fund.select().where(Fund.ledger_code == ""):
        fund.ledger_code = f"L{fund.id}"
        fund.save()
    batch = runs.run_export(template, today())
    rows = _rows(batch)[1:]
    debits = sum(Decimal(r[4]) * 100 for r in rows)
    credits = sum(Decimal(r[5]) * 100 for r in rows)
    assert debits == credits == batch.debit_pence == batch.credit_pence
    contra = sum(Decimal(r[4]) * 100 - Decimal(r[5]) * 100 for r in rows if r[1] == "9000")
    assert contra == batch.total_pence == LedgerEntry.totals(LedgerEntry.select())[1]
    vat = sum(Decimal(r[5]) * 100 - Decimal(r[4]) * 100 for r in rows if r[1] == "9500")
    assert vat == sum(e.vat_pence for e in LedgerEntry.select())
    for day in {r[0] for r in rows}:
        assert sum(Decimal(r[4]) for r in rows if r[0] == day) == sum(Decimal(r[5]) for r in rows if r[0] == day)


def test_a_journal_refuses_funds_without_a_ledger_code(app):
    fund = Fund.by_code("LIB")
    fund.ledger_code = ""
    fund.save()
    _post(500, fund="LIB", key="export-test-lib")
    with pytest.raises(Exception, match="general ledger code"):
        runs.run_export(_template("GLJOURNAL"), today())
    assert not ExportBatch.select().where(ExportBatch.template == _template("GLJOURNAL")).exists()


def test_void_makes_entries_exportable_again_and_deletes_nothing(app):
    template = _template("CTAXDAILY")
    batch = runs.run_export(template, today())
    marks = ExportedEntry.select().where(ExportedEntry.batch == batch.id).count()
    with pytest.raises(Exception, match="why"):
        runs.void_batch(batch, _user("senior"), "  ")
    runs.void_batch(batch, _user("senior"), "Back office rejected the file")
    assert ExportedEntry.select().where(ExportedEntry.batch == batch.id).count() == marks
    assert (
        not ExportedEntry.select()
        .where((ExportedEntry.batch == batch.id) & ExportedEntry.active.is_null(False))
        .exists()
    )
    assert ExportBatch.get_by_id(batch.id).status == "void"
    assert runs.file_is_intact(ExportBatch.get_by_id(batch.id))
    again = runs.run_export(template, today())
    assert (again.entry_count, again.total_pence) == (batch.entry_count, batch.total_pence)
    with pytest.raises(Exception, match="already void"):
        runs.void_batch(ExportBatch.get_by_id(batch.id), _user("senior"), "Twice")
    event = AuditEvent.get((AuditEvent.action == "export.void") & (AuditEvent.object_id == str(batch.id)))
    assert event.after_data["released"] == marks
    entry = LedgerEntry.get_by_id(ExportedEntry.select().where(ExportedEntry.batch == again.id).first().entry_id)
    titles = [item.title for item in timeline(entry, [f.id for f in Fund.select()]) if item.kind == "export"]
    assert titles == [f"Exported in {batch.file_name} (batch void: exportable again)", f"Exported in {again.file_name}"]


def test_the_unique_index_refuses_a_second_live_export_of_an_entry(app):
    template = _template("CTAXDAILY")
    batch = runs.run_export(template, today())
    mark = ExportedEntry.select().where(ExportedEntry.batch == batch.id).first()
    with pytest.raises(IntegrityError), database.atomic():
        ExportedEntry.create(entry=mark.entry_id, template=template.id, batch=batch.id, active=True)
    # A void mark (active NULL) never clashes.
    ExportedEntry.create(entry=mark.entry_id, template=template.id, batch=batch.id, active=None)


def test_a_changed_template_is_a_new_version_and_the_batch_keeps_its_definition(app):
    template = _template("CTAXDAILY")
    batch = runs.run_export(template, today())
    values = {k: getattr(template, k) for k in ("code", "name", "description", "kind", "file_format", "schedule")}
    import json

    definition = json.loads(template.definition)
    definition["fields"] = definition["fields"][:2]
    change_template(template, _user("admin"), values | {"file_name_pattern": "X_{seq}.csv", "definition": definition})
    assert template.version == batch.template_version + 1
    assert json.loads(batch.definition)["fields"] != definition["fields"]
    assert b"".join(runs.regenerate(batch)) == b"".join(runs.file_bytes(batch))


def test_the_schedule_runs_a_daily_template_once_a_day(app):
    template = _template("LOCALGOV15")
    template.schedule, template.schedule_time = "daily", "00:00"
    template.save()
    now = utcnow() + dt.timedelta(days=1)
    first = runs.run_due_exports(now)
    assert first["LOCALGOV15"].startswith("batch")
    assert "LOCALGOV15" not in runs.run_due_exports(now)
    batch = ExportBatch.select().where(ExportBatch.template == template).get()
    assert batch.trigger == "schedule" and batch.cut_off == business_date(now) - dt.timedelta(days=1)


def test_cli_export_run(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["export-run", "ctaxdaily", "--until", today().isoformat()])
    assert result.exit_code == 0, result.output
    assert "CTAX_" in result.output and "SHA-256" in result.output
    batch = ExportBatch.select().order_by(ExportBatch.id.desc()).first()
    assert batch.trigger == "cli" and batch.sha256 in result.output
    again = runner.invoke(args=["export-run", "CTAXDAILY", "--until", today().isoformat()])
    assert again.exit_code == 0 and "nothing new" in again.output
    assert runner.invoke(args=["export-run", "NOPE"]).exit_code == 1
    future = runner.invoke(args=["export-run", "CTAXDAILY", "--until", (today() + dt.timedelta(days=2)).isoformat()])
    assert future.exit_code == 1 and "today or in the past" in future.output


# --- pages --------------------------------------------------------------------------------------


def test_finance_previews_runs_and_downloads_byte_for_byte(app, signed_in):
    client = signed_in("finance")
    page = client.get("/exports")
    assert page.status_code == 200 and b"Preview and run Council tax daily file" in page.data
    assert b"General ledger journal" not in page.data  # every fund: not all visible to this officer
    template = _template("CTAXDAILY")
    day = today()
    preview = client.get(
        f"/admin/export-templates/{template.id}/preview",
        query_string=[("until", str(day.day)), ("until", str(day.month)), ("until", str(day.year))],
    )
    assert preview.status_code == 200 and b"H,IMS," in preview.data
    response = client.post(
        f"/admin/export-templates/{template.id}/run",
        data={"csrf_token": csrf_token(preview.data), "until": today().isoformat()},
    )
    assert response.status_code == 302
    batch = ExportBatch.select().order_by(ExportBatch.id.desc()).first()
    assert response.location.endswith(f"/exports/{batch.id}")
    page = client.get(f"/exports/{batch.id}")
    assert page.status_code == 200 and batch.sha256.encode() in page.data and b"Void this batch" not in page.data
    download = client.get(f"/exports/{batch.id}/download")
    assert download.data == b"".join(runs.file_bytes(batch))
    assert download.headers["X-Content-SHA256"] == batch.sha256
    assert batch.file_name in download.headers["Content-Disposition"]
    history = client.get(f"/exports?template={template.id}&status=exported")
    assert batch.file_name.encode() in history.data
    partial = client.get("/exports?status=void", headers={"HX-Request": "true"})
    assert batch.file_name.encode() not in partial.data
    # Nothing left: the run is refused with an error summary, not a 500.
    again = client.post(
        f"/admin/export-templates/{template.id}/run",
        data={"csrf_token": csrf_token(preview.data), "until": today().isoformat()},
    )
    assert again.status_code == 200 and b"govuk-error-summary" in again.data and b"nothing new" in again.data
    assert client.post(f"/exports/{batch.id}/void", data={"csrf_token": csrf_token(preview.data)}).status_code == 403
    # The transaction's page says which export it went into.
    entry = LedgerEntry.get_by_id(ExportedEntry.select().where(ExportedEntry.batch == batch.id).first().entry_id)
    details = client.get(f"/transactions/{entry.receipt_reference}")
    assert f"Exported in {batch.file_name}".encode() in details.data
    assert f"/exports/{batch.id}".encode() in details.data


def test_housing_cannot_see_council_tax_exports(app, signed_in):
    batch = runs.run_export(_template("CTAXDAILY"), today())
    client = signed_in("housing")
    assert client.get(f"/exports/{batch.id}").status_code == 404
    assert client.get(f"/exports/{batch.id}/download").status_code == 404
    assert batch.file_name.encode() not in client.get("/exports").data
    assert client.get(f"/admin/export-templates/{batch.template_id}/preview").status_code == 404


def test_senior_voids_a_batch_with_a_reason(app, signed_in):
    batch = runs.run_export(_template("CTAXDAILY"), today())
    client = signed_in("senior")
    page = client.get(f"/exports/{batch.id}/void")
    assert page.status_code == 200
    empty = client.post(f"/exports/{batch.id}/void", data={"csrf_token": csrf_token(page.data), "reason": ""})
    assert empty.status_code == 200 and b"Enter why the batch is being voided" in empty.data
    done = client.post(
        f"/exports/{batch.id}/void",
        data={"csrf_token": csrf_token(page.data), "reason": "Rejected"},
        follow_redirects=True,
    )
    assert done.status_code == 200 and b"voided" in done.data and b"Rejected" in done.data
    assert ExportBatch.get_by_id(batch.id).is_void


def _form(template: ExportTemplate | None = None, **changes) -> dict:
    data = {
        "code": "RENTFIX",
        "name": "Rent fixed width",
        "kind": "detail",
        "file_format": "fixed",
        "funds": "HRENT",
        "delimiter": "comma",
        "line_ending": "lf",
        "encoding": "utf-8",
        "file_name_pattern": "RENT_{date:%Y%m%d}_{seq}.txt",
        "schedule": "daily",
        "schedule_time": "6:30",
        "fields-0-source": "account_reference",
        "fields-0-width": "12",
        "fields-0-align": "left",
        "fields-0-pad": " ",
        "fields-0-unit": "pounds",
        "fields-0-sign": "as_is",
        "fields-1-source": "amount",
        "fields-1-width": "10",
        "fields-1-align": "right",
        "fields-1-pad": "0",
        "fields-1-unit": "pence",
        "fields-1-sign": "as_is",
        "fields-2-source": "",
        "trailer-0-source": "line_count",
        "trailer-0-width": "6",
        "trailer-0-align": "right",
        "trailer-0-pad": "0",
        "trailer-0-unit": "pounds",
        "trailer-0-sign": "as_is",
    }
    return data | changes


def test_an_administrator_defines_a_template_without_javascript(app, signed_in):
    client = signed_in("admin")
    page = client.get("/admin/export-templates/add")
    token = csrf_token(page.data)
    assert client.get("/admin/export-templates").status_code == 200
    # "Add another line field" posts back with one more row and saves nothing.
    more = client.post("/admin/export-templates/add", data=_form(csrf_token=token, add_field="Add another line field"))
    assert more.status_code == 200 and b'name="fields-3-source"' in more.data
    assert ExportTemplate.by_code("RENTFIX") is None
    # Bad input: the error summary names the row.
    bad = client.post("/admin/export-templates/add", data=_form(csrf_token=token, **{"fields-1-width": ""}))
    assert bad.status_code == 200 and b"govuk-error-summary" in bad.data
    assert b"Line field 2: enter a width" in bad.data and b'href="#fields-1-width"' in bad.data
    bad_name = client.post("/admin/export-templates/add", data=_form(csrf_token=token, file_name_pattern="{date.x}"))
    assert b"The file name can only use" in bad_name.data
    saved = client.post("/admin/export-templates/add", data=_form(csrf_token=token))
    assert saved.status_code == 302, saved.data
    template = ExportTemplate.by_code("RENTFIX")
    assert (template.schedule_time, template.file_format, template.version) == ("06:30", "fixed", 1)
    view = client.get(f"/admin/export-templates/{template.id}")
    assert view.status_code == 200 and b"Daily at 06:30" in view.data
    edit = client.get(f"/admin/export-templates/{template.id}/change")
    assert edit.status_code == 200 and b'value="RENT_{date:%Y%m%d}_{seq}.txt"' in edit.data
    changed = client.post(f"/admin/export-templates/{template.id}/change", data=_form(csrf_token=token, name="Rents"))
    assert changed.status_code == 302 and ExportTemplate.by_code("RENTFIX").version == 2
    toggle = client.get(f"/admin/export-templates/{template.id}/disable")
    assert (
        client.post(
            f"/admin/export-templates/{template.id}/disable", data={"csrf_token": csrf_token(toggle.data)}
        ).status_code
        == 302
    )  # noqa: E501
    assert not ExportTemplate.by_code("RENTFIX").enabled
    # Administrators design templates; they neither run them nor see the transactions in them.
    assert client.get(f"/admin/export-templates/{template.id}/preview").status_code == 403
    # The housing officer runs it and gets a fixed-width file.
    ExportTemplate.update(enabled=True).where(ExportTemplate.id == template.id).execute()
    batch = runs.run_export(ExportTemplate.by_code("RENTFIX"), today())
    lines = b"".join(runs.file_bytes(batch)).decode().split("\n")[:-1]
    assert all(len(line) == 22 for line in lines[:-1]) and lines[-1] == f"{batch.entry_count:06d}"
    assert sum(int(line[12:]) for line in lines[:-1]) == batch.total_pence


# --- exactly once under concurrency (real commits) -----------------------------------------------


def test_concurrent_runs_never_share_an_entry(fresh_database):
    from app.demo import seed_configuration, seed_ledger

    with fresh_database.atomic():
        seed_configuration()
    seed_ledger(entries=60)
    template = create_template(None, dict(next(p for p in PRESETS if p["code"] == "LOCALGOV15")) | {"code": "RACE"})
    total = LedgerEntry.select().where(LedgerEntry.business_date <= today()).count()
    barrier = threading.Barrier(3)
    outcomes: list = []
    lock = threading.Lock()

    def run():
        barrier.wait()
        try:
            result = runs.run_export(template, today())
        except Exception as exc:  # noqa: BLE001 - recorded and checked below
            result = exc
        finally:
            fresh_database.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    batches = [o for o in outcomes if isinstance(o, ExportBatch)]
    others = [o for o in outcomes if not isinstance(o, ExportBatch)]
    assert len(outcomes) == 3 and batches, outcomes
    assert all(isinstance(o, NothingToExport) or "try again" in str(o) for o in others), others
    marks = list(ExportedEntry.select().where(ExportedEntry.template == template.id))
    assert len(marks) == len({m.entry_id for m in marks}) == total
    assert sum(b.entry_count for b in batches) == total
