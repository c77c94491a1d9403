"""Imports: bulk posting through the ledger, the import pipeline, its pages, CLI and races.

Outcomes are checked in the ledger and in suspense: entry counts and sums against the file's
control totals, suspense items with their reasons, rejected lines listed, nothing posted when a
file is rejected or a run fails part way, one import however often it is confirmed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random

import pytest

from app.domain import suspense
from app.domain.funds import Fund
from app.domain.ledger import (
    LedgerEntry,
    PostedEntry,
    PostingRequest,
    ReceiptNumber,
    is_valid_receipt_reference,
    post,
    post_batch,
    receipt_number_of,
)
from app.domain.methods import MethodOfPayment
from app.domain.references.demo import generate_valid_reference
from app.domain.suspense import SuspenseItem
from app.domain.ukdates import start_of_day_utc
from app.domain.users import User
from tests.pages import DEMO_EMAILS

FIELDS = (
    "fund_id",
    "account_reference",
    "amount_pence",
    "vat_code_id",
    "vat_rate",
    "vat_pence",
    "net_pence",
    "method_id",
    "office_id",
    "user_id",
    "narrative",
    "payer_name",
    "payer_email",
    "payer_address",
    "taken_at",
    "business_date",
    "source",
    "source_reference",
    "corrects_id",
    "group_reference",
    "import_batch_id",
)


def _user(who: str) -> User:
    return User.get(User.email == DEMO_EMAILS[who])


def _noon(day: dt.date) -> dt.datetime:
    return start_of_day_utc(day) + dt.timedelta(hours=12)


# ---------------------------------------------------------------------------
# ledger.post_batch: the bulk path makes exactly the entries post() makes
# ---------------------------------------------------------------------------


def _requests(prefix: str, n: int = 7) -> list[PostingRequest]:
    rng = random.Random(5)
    ctax, parking = Fund.by_code("CTAX"), Fund.by_code("LIB")
    cash = MethodOfPayment.by_code("CASH")
    clerk = _user("finance")
    made = []
    for i in range(n):
        fund = (ctax, parking)[i % 2]
        made.append(
            PostingRequest(
                idempotency_key=f"{prefix}:{i}",
                fund=fund,
                account_reference=f"  {generate_valid_reference(fund.code, rng)} ",
                amount_pence=(i + 1) * 1234 * (-1 if i == 3 else 1),
                method=cash,
                source="import",
                # Either side of midnight in London, and the VAT change of 4 January 2011 on a VAT fund.
                taken_at=dt.datetime(2026, 6, 30, 23, 30) if i % 3 == 0 else dt.datetime(2011, 1, 3, 12, 0),
                user=clerk,
                narrative=f" Line {i} ",
                payer_name="A Payer",
                source_reference=f"file line {i}",
                import_batch_id=None,
            )
        )
    return made


def test_post_batch_makes_the_same_entries_as_post(app):
    requests = _requests("bulk-same")
    singles = [post(dataclasses.replace(r, idempotency_key=r.idempotency_key + ":single")).entry for r in requests]
    seen: list[PostedEntry] = []
    result = post_batch(requests, import_batch_id=42, chunk=3, on_chunk=seen.extend)
    assert (result.count, result.total_pence) == (len(requests), sum(r.amount_pence for r in requests))
    assert [p.request.idempotency_key for p in seen] == [r.idempotency_key for r in requests]
    for single, posted in zip(singles, seen, strict=True):
        bulk = LedgerEntry.get_by_id(posted.entry_id)
        assert bulk.receipt_reference == posted.receipt_reference
        assert is_valid_receipt_reference(bulk.receipt_reference)
        assert ReceiptNumber.get_or_none(ReceiptNumber.id == receipt_number_of(bulk.receipt_reference)) is not None
        for name in FIELDS:
            if name == "import_batch_id":
                assert bulk.import_batch_id == 42
                continue
            assert getattr(bulk, name) == getattr(single, name), name
        assert bulk.business_date == posted.business_date
    receipts = [LedgerEntry.get_by_id(p.entry_id).receipt_reference for p in seen]
    assert len(set(receipts)) == len(receipts)


def test_post_batch_applies_the_ledgers_rules_and_posts_nothing_when_one_line_breaks_them(app):
    before = LedgerEntry.totals()
    requests = _requests("bulk-bad")
    requests[4] = dataclasses.replace(requests[4], amount_pence=0)
    from app.domain.errors import DomainError

    with pytest.raises(DomainError, match="other than £0.00"):
        post_batch(requests, chunk=2)
    assert LedgerEntry.totals() == before
    with pytest.raises(DomainError, match="same idempotency key"):
        post_batch([requests[0], requests[0]])
    assert LedgerEntry.totals() == before


def test_post_batch_refuses_a_key_already_posted(app):
    from peewee import IntegrityError

    requests = _requests("bulk-twice", 3)
    post_batch(requests)
    before = LedgerEntry.totals()
    with pytest.raises(IntegrityError):
        post_batch(requests)
    assert LedgerEntry.totals() == before


def test_post_batch_fails_whole_when_a_later_chunk_is_refused_by_the_database(app):
    # A chunk the database refuses (a key already posted, found only by the unique index) fails
    # the posting, and the chunks written before it are rolled back with everything else.
    from peewee import IntegrityError

    requests = _requests("bulk-late", 9)
    post_batch(requests[7:8])
    before = LedgerEntry.totals()
    with pytest.raises(IntegrityError):
        post_batch(requests, chunk=2)
    assert LedgerEntry.totals() == before
    assert not LedgerEntry.select().where(LedgerEntry.idempotency_key == requests[0].idempotency_key).exists()


def test_post_batch_hands_over_each_chunk_once_its_entries_are_written(app):
    requests = _requests("bulk-order", 7)
    chunks = []

    def written(chunk):
        ids = [p.entry_id for p in chunk]
        found = {e.id: e for e in LedgerEntry.select().where(LedgerEntry.id.in_(ids))}
        assert sorted(found) == sorted(ids), "on_chunk ran before its entries were written"
        for p in chunk:
            entry = found[p.entry_id]
            assert entry.receipt_reference == p.receipt_reference
            assert entry.receipt_number == receipt_number_of(p.receipt_reference)
            assert LedgerEntry.by_receipt(p.receipt_reference) == entry
        chunks.append(len(chunk))

    post_batch(requests, chunk=3, on_chunk=written)
    assert chunks == [3, 3, 1]


def test_open_items_bulk_opens_items_for_money_posted_to_suspense(app):
    susp = Fund.by_code("SUSP")
    method = MethodOfPayment.by_code("ALLPAY")
    day = dt.date(2026, 3, 2)
    requests = [
        suspense.suspense_request(
            susp,
            500 + i,
            method,
            source="import",
            idempotency_key=f"bulk-susp:{i}",
            reference=f"ref {i}",
            taken_at=_noon(day),
        )
        for i in range(3)
    ]
    reasons = {r.idempotency_key: f"Reason {n}" for n, r in enumerate(requests)}

    def opened(chunk):
        suspense.open_items_bulk(
            [
                (
                    p.entry_id,
                    p.request.fund.id,
                    p.request.amount_pence,
                    p.business_date,
                    reasons[p.request.idempotency_key],
                )
                for p in chunk
            ],
            source="import",
        )

    post_batch(requests, on_chunk=opened)
    items = list(
        SuspenseItem.select().where(SuspenseItem.source_detail.startswith("Reason ")).order_by(SuspenseItem.id)
    )
    assert [(i.amount_pence, i.remaining_pence, i.status, i.source, i.received_on) for i in items] == [
        (500 + n, 500 + n, "open", "import", day) for n in range(3)
    ]
    assert [i.ledger_entry.account_reference for i in items] == ["REF 0", "REF 1", "REF 2"]
    assert all(i.fund_id == susp.id for i in items)
    # The suspense list and allocation work on them as on any item.
    assert suspense.available_pence(items[0]) == 500


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------

DAY = dt.date(2026, 3, 2)
STORE: dict[str, str] = {}  # where the current test keeps uploaded files


def allpay_line(sequence: int, reference: str, pence: int, channel: str = "P", day: dt.date = DAY) -> str:
    amount = f"{'-' if pence < 0 else ''}{abs(pence) // 100}.{abs(pence) % 100:02d}"
    return f"{sequence:>7}{reference:<16}{amount:>9}{channel}{day:%d/%m/%Y}"


def allpay_file(lines: list[str], *, total: int | None = None, count: int | None = None) -> bytes:
    if total is None:
        total = sum(int(line[23:32].replace(".", "")) for line in lines if len(line) >= 43)
    count = len(lines) if count is None else count
    pounds = f"{'-' if total < 0 else ''}{abs(total) // 100}.{abs(total) % 100:02d}"
    trailer = [f"Total Amount Updated onto System: {pounds}", f"Total Transactions updated onto System: {count}"]
    return ("\r\n".join([*lines, "", *trailer]) + "\r\n").encode("cp1252")


def _wrong_check_digit(reference: str) -> str:
    return reference[:-1] + str((int(reference[-1]) + 1) % 10)


@dataclasses.dataclass
class Sample:
    data: bytes
    good: list[tuple[str, int]]  # (reference, pence) that post to CTAX
    bad_check: str  # a CTAX reference with the wrong check digit: suspense
    unknown: str  # matches no fund: suspense
    zero_line: int  # line number of the £0.00 line: rejected


def _sample(n_good: int = 6, seed: int = 11) -> Sample:
    rng = random.Random(seed)
    good = [(generate_valid_reference("CTAX", rng), 1000 + i * 101) for i in range(n_good)]
    bad = _wrong_check_digit(good[0][0])
    unknown = "ZZ99"
    lines = [allpay_line(100 + i, ref, pence) for i, (ref, pence) in enumerate(good)]
    lines.append(allpay_line(900, bad, 2500, "T"))
    lines.append(allpay_line(901, unknown, 750, "N"))
    lines.append(allpay_line(902, good[1][0], 0, "P"))
    return Sample(allpay_file(lines), good, bad, unknown, len(lines))


@pytest.fixture
def allpay(app, tmp_path):
    from app.domain.imports.templates import ImportTemplate, ensure_builtin_templates, set_demo_template_defaults

    app.config["IMPORT_STORAGE_DIR"] = STORE["dir"] = str(tmp_path / "imports")
    ensure_builtin_templates()
    set_demo_template_defaults()
    return ImportTemplate.builtin("allpay")


def _preview(template, data: bytes, who: str = "finance", name: str = "allpay-20260302.txt", directory=None):
    import io

    from app.domain.imports import batches

    return batches.preview(template, name, io.BytesIO(data), _user(who), directory=directory or STORE["dir"])


def _run(batch, who: str = "finance"):
    from app.domain.imports import batches

    assert batches.confirm(batch, _user(who)) is True
    return batches.run_batch(batch.id, directory=STORE["dir"])


def _batch_entries(batch_id: int):
    return LedgerEntry.select().where(LedgerEntry.import_batch_id == batch_id)


def test_an_allpay_file_is_previewed_then_posted_with_control_totals_suspense_and_rejections(app, allpay):
    from app.domain.imports.batches import ImportBatch

    sample = _sample()
    before = LedgerEntry.totals()
    result = _preview(allpay, sample.data)
    batch = result.batch
    good_total = sum(p for _, p in sample.good)
    # The preview counts everything and posts nothing.
    assert (batch.status, batch.row_count, batch.rejected_count) == ("previewed", len(sample.good) + 3, 1)
    assert (batch.posted_count, batch.posted_total_pence) == (len(sample.good), good_total)
    assert (batch.suspense_count, batch.suspense_total_pence) == (2, 3250)
    assert batch.file_total_pence == good_total + 3250
    assert LedgerEntry.totals() == before
    assert [p.line_number for p in result.first_problems] == [
        len(sample.good) + 1,
        len(sample.good) + 2,
        sample.zero_line,
    ]
    assert result.duplicate is None

    done = _run(batch)
    assert done.status == "completed", done.failure_message
    # Control totals: the ledger holds exactly what the file said would post or go to suspense.
    count, total = LedgerEntry.totals(_batch_entries(batch.id))
    assert (count, total) == (len(sample.good) + 2, good_total + 3250)
    assert LedgerEntry.totals() == (before[0] + count, before[1] + total)
    posted = list(_batch_entries(batch.id).where(LedgerEntry.fund == Fund.by_code("CTAX").id).order_by(LedgerEntry.id))
    assert [(e.account_reference, e.amount_pence) for e in posted] == sample.good
    assert {e.business_date for e in posted} == {DAY}
    assert {e.source for e in posted} == {"import"}
    assert {e.method.code for e in posted} == {"ALLPAY"}
    assert all(e.idempotency_key.startswith(f"import:{batch.id}:") for e in posted)
    assert all(is_valid_receipt_reference(e.receipt_reference) for e in posted)
    items = list(
        SuspenseItem.select()
        .join(LedgerEntry)
        .where(LedgerEntry.import_batch_id == batch.id)
        .order_by(SuspenseItem.amount_pence)
    )
    assert [(i.ledger_entry.account_reference, i.amount_pence, i.source, i.status) for i in items] == [
        (sample.unknown, 750, "import", "open"),
        (sample.bad_check, 2500, "import", "open"),
    ]
    # The allpay template names no fund: a reference goes where its format (and check digit) says.
    assert items[0].source_detail == f"The reference {sample.unknown} matches no fund's reference format"
    assert items[1].source_detail == f"The reference {sample.bad_check} matches no fund's reference format"
    stored = ImportBatch.get_by_id(batch.id)
    assert (stored.posted_count, stored.suspense_count, stored.rejected_count) == (len(sample.good), 2, 1)
    assert stored.finished_at is not None and stored.attempts == 1
    rejected = list(stored.problems("rejected"))
    assert [(p.line_number, p.kind) for p in rejected] == [(sample.zero_line, "rejected")]
    # Running it again (a retried job) does nothing.
    from app.domain.imports import batches

    assert batches.run_batch(batch.id, directory=app.config["IMPORT_STORAGE_DIR"]).status == "completed"
    assert LedgerEntry.totals(_batch_entries(batch.id)) == (count, total)


def test_a_file_whose_trailer_does_not_match_is_rejected_and_nothing_is_recorded(app, allpay):
    from app.domain.imports.batches import ImportBatch
    from app.domain.imports.formats import FileRejected

    sample = _sample()
    lines = sample.data.decode("cp1252").split("\r\n")
    wrong = allpay_file([line for line in lines[: len(sample.good) + 3]], total=1)
    before = (LedgerEntry.totals(), ImportBatch.select().count())
    with pytest.raises(FileRejected, match="trailer says the total"):
        _preview(allpay, wrong)
    assert (LedgerEntry.totals(), ImportBatch.select().count()) == before


def test_a_file_rejected_when_it_runs_posts_nothing_and_fails(app, allpay, monkeypatch):
    from app.domain.imports import formats

    sample = _sample()
    batch = _preview(allpay, sample.data).batch
    real = formats.read_rows

    def rejected_at_the_end(template, data):
        yield from real(template, data)
        raise formats.FileRejected("The trailer says the total is £1.00")

    monkeypatch.setattr(formats, "read_rows", rejected_at_the_end)
    before = LedgerEntry.totals()
    done = _run(batch)
    assert done.status == "failed"
    assert "The file was rejected: The trailer says the total is £1.00" in done.failure_message
    assert LedgerEntry.totals() == before
    assert SuspenseItem.select().join(LedgerEntry).where(LedgerEntry.import_batch_id == batch.id).count() == 0


def test_a_run_that_fails_part_way_posts_nothing_and_can_be_run_again(app, allpay, monkeypatch):
    from app.domain.imports import batches

    sample = _sample(n_good=30)
    batch = _preview(allpay, sample.data).batch
    real = batches.Planner.plan
    calls = {"n": 0}

    def breaks_after_twenty(self, item):
        calls["n"] += 1
        if calls["n"] > 20:
            raise RuntimeError("the disk fell off")
        return real(self, item)

    monkeypatch.setattr(batches.Planner, "plan", breaks_after_twenty)
    before = LedgerEntry.totals()
    # Chunks of 5 lines: four chunks are written before it breaks, and all of them roll back.
    assert batches.confirm(batch, _user("finance"))
    failed = batches.run_batch(batch.id, directory=app.config["IMPORT_STORAGE_DIR"], chunk=5)
    assert failed.status == "failed"
    assert "RuntimeError" in failed.failure_message
    assert LedgerEntry.totals() == before
    assert failed.problems().count() == batch.problems().count()  # the preview's list is still there

    monkeypatch.setattr(batches.Planner, "plan", real)
    assert batches.run_again(failed, _user("finance"), directory=app.config["IMPORT_STORAGE_DIR"]) is True
    done = batches.run_batch(batch.id, directory=app.config["IMPORT_STORAGE_DIR"], chunk=5)
    assert done.status == "completed" and done.attempts == 2
    assert LedgerEntry.totals(_batch_entries(batch.id)) == (32, sum(p for _, p in sample.good) + 3250)


def test_a_batch_left_running_by_a_dead_worker_can_be_run_again_once_its_heartbeat_is_stale(app, allpay):
    from app.domain.imports import batches
    from app.domain.imports.batches import ImportBatch

    batch = _preview(allpay, _sample().data).batch
    directory = app.config["IMPORT_STORAGE_DIR"]
    assert batches.confirm(batch, _user("finance"))
    # The worker took it, then died: the posting transaction rolled back, the status stayed "running".
    ImportBatch.update(status="running", attempts=1, started_at=dt.datetime(2026, 1, 1)).where(
        ImportBatch.id == batch.id
    ).execute()
    batches.write_progress(directory, batch.id, 3, 1)
    running = ImportBatch.get_by_id(batch.id)
    assert not batches.is_stale(running, directory)
    assert batches.run_again(running, _user("finance"), directory=directory) is False
    assert batches.is_stale(running, directory, stale_seconds=-1)
    assert batches.run_again(running, _user("finance"), directory=directory, stale_seconds=-1) is True
    assert batches.run_batch(batch.id, directory=directory).status == "completed"
    assert _batch_entries(batch.id).count() == 8


def test_the_same_file_is_refused_until_a_senior_finance_officer_allows_it_with_a_reason(app, allpay):
    from app.domain.audit import AuditEvent
    from app.domain.errors import DomainError
    from app.domain.imports import batches

    sample = _sample()
    first = _preview(allpay, sample.data).batch
    assert _run(first).status == "completed"
    second = _preview(allpay, sample.data, name="again.txt")
    assert second.duplicate is not None and second.duplicate.id == first.id
    before = LedgerEntry.totals()
    with pytest.raises(batches.DuplicateFile, match="already been imported"):
        batches.confirm(second.batch, _user("finance"))
    with pytest.raises(DomainError, match="Only a senior finance officer"):
        batches.allow_duplicate(second.batch, _user("finance"), "Because")
    with pytest.raises(DomainError, match="Enter why"):
        batches.allow_duplicate(second.batch, _user("senior"), "  ")
    assert LedgerEntry.totals() == before
    allowed = batches.allow_duplicate(second.batch, _user("senior"), "The first import was reversed in the GL")
    assert allowed.override_duplicate_by_id == _user("senior").id
    event = (
        AuditEvent.select().where(AuditEvent.action == "import.allow_duplicate").order_by(AuditEvent.seq.desc()).first()
    )
    assert event is not None and "reversed in the GL" in event.summary
    assert _run(allowed).status == "completed"
    assert LedgerEntry.totals(_batch_entries(allowed.id)) == LedgerEntry.totals(_batch_entries(first.id))


def test_reversing_an_import_posts_a_linked_reversal_for_every_entry_and_deletes_nothing(app, allpay):
    from app.domain.errors import DomainError
    from app.domain.imports import batches

    batch = _run(_preview(allpay, _sample().data).batch)
    entries = list(_batch_entries(batch.id).order_by(LedgerEntry.id))
    before = LedgerEntry.totals()
    with pytest.raises(DomainError, match="Only a senior finance officer"):
        batches.reverse_batch(batch, _user("finance"), "Wrong file")
    with pytest.raises(DomainError, match="Enter why"):
        batches.reverse_batch(batch, _user("senior"), "")
    assert batches.reverse_batch(batch, _user("senior"), "allpay sent the wrong day's file") == len(entries)
    reversals = list(LedgerEntry.select().where(LedgerEntry.group_reference == f"IMP-{batch.id}-REV"))
    assert sorted((r.corrects_id, r.amount_pence) for r in reversals) == sorted(
        (e.id, -e.amount_pence) for e in entries
    )
    assert {r.source for r in reversals} == {"reversal"}
    assert LedgerEntry.totals() == (before[0] + len(entries), before[1] - sum(e.amount_pence for e in entries))
    # Nothing deleted: every original entry is still there, unchanged.
    assert [(e.id, e.amount_pence) for e in _batch_entries(batch.id).order_by(LedgerEntry.id)] == [
        (e.id, e.amount_pence) for e in entries
    ]
    items = list(SuspenseItem.select().join(LedgerEntry).where(LedgerEntry.import_batch_id == batch.id))
    assert items and all(i.status == "allocated" and i.remaining_pence == 0 for i in items)
    assert all(suspense.available_pence(i) == 0 for i in items)
    stored = batches.ImportBatch.get_by_id(batch.id)
    assert stored.status == "reversed" and stored.reversal_reason == "allpay sent the wrong day's file"
    with pytest.raises(DomainError, match="Only an import that has been completed"):
        batches.reverse_batch(stored, _user("senior"), "Again")
    # A reversed file no longer counts as imported: it can come in again.
    assert _preview(allpay, _sample().data, name="again.txt").duplicate is None


# ---------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------


def _upload(client, template, data: bytes, name: str = "allpay.txt"):
    import io

    from tests.pages import csrf_token

    token = csrf_token(client.get("/imports/new").get_data())
    return client.post(
        "/imports/new",
        data={"csrf_token": token, "template": str(template.id), "file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_upload_preview_confirm_and_summary_pages(app, allpay, signed_in):
    from tests.pages import csrf_token, error_summary, h1, main_text, summary_list, table_rows

    sample = _sample()
    client = signed_in("finance")
    page = client.get("/imports/new")
    assert page.status_code == 200 and h1(page.get_data()) == "Import a payment file"
    response = _upload(client, allpay, sample.data)
    assert response.status_code == 302
    preview = client.get(response.location)
    body = preview.get_data()
    assert "Nothing has been posted yet" in main_text(body)
    summary = summary_list(body)
    assert summary["Status"] == "Not imported yet"
    assert summary["To post"].startswith(f"{len(sample.good)} lines")
    assert summary["To go to suspense"].startswith("2 lines")
    assert summary["Rejected (cannot be read)"] == "1 line"
    rows = table_rows(body)
    assert ["The reference ZZ99 matches no fund's reference format", "1"] in rows
    assert [str(sample.zero_line), "Rejected", "The amount is £0.00"][0] in [r[0] for r in rows]
    batch_id = int(response.location.rstrip("/").split("/")[-1])
    before = LedgerEntry.totals()
    # Confirm twice (a double click): one import.
    token = csrf_token(body)
    first = client.post(f"/imports/{batch_id}/confirm", data={"csrf_token": token})
    second = client.post(f"/imports/{batch_id}/confirm", data={"csrf_token": token})
    assert first.status_code == second.status_code == 302
    assert LedgerEntry.totals(_batch_entries(batch_id))[0] == len(sample.good) + 2
    assert LedgerEntry.totals()[0] == before[0] + len(sample.good) + 2
    done = client.get(f"/imports/{batch_id}")
    assert summary_list(done.get_data())["Status"] == "Imported"
    # The history lists it; filters work without JavaScript and with htmx.
    history = client.get("/imports?status=completed")
    assert f"Import {batch_id}" in main_text(history.get_data())
    assert f"Import {batch_id}" not in main_text(client.get("/imports?status=failed").get_data())
    partial = client.get("/imports?status=completed", headers={"HX-Request": "true"})
    assert "HX-Request" in partial.headers["Vary"] and f"Import {batch_id}" in partial.get_data(as_text=True)
    bad = client.get("/imports?date_from=31&date_from=2&date_from=2026")
    assert error_summary(bad.get_data())
    # The progress fragment of a finished import tells htmx to reload the page.
    fragment = client.get(f"/imports/{batch_id}/progress", headers={"HX-Request": "true"})
    assert fragment.headers.get("HX-Refresh") == "true"
    assert client.get(f"/imports/{batch_id}/progress").status_code == 302
    assert client.get("/imports/999999").status_code == 404


def test_the_progress_fragment_and_refresh_link_while_an_import_runs(app, allpay, signed_in):
    from app.domain.imports import batches
    from app.domain.imports.batches import ImportBatch
    from tests.pages import main_text

    batch = _preview(allpay, _sample().data).batch
    assert batches.confirm(batch, _user("finance"))
    ImportBatch.update(status="running", attempts=1, started_at=dt.datetime.now()).where(
        ImportBatch.id == batch.id
    ).execute()
    batches.write_progress(STORE["dir"], batch.id, 4, 1)
    client = signed_in("finance")
    page = client.get(f"/imports/{batch.id}")
    text = main_text(page.get_data())
    assert "4 of 9 lines read (44%)" in text and "Refresh" in text
    assert 'hx-trigger="every 1s"' in page.get_data(as_text=True)
    fragment = client.get(f"/imports/{batch.id}/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "4 of 9 lines read" in fragment.get_data(as_text=True)
    assert fragment.headers.get("HX-Refresh") is None


def test_upload_errors_are_shown_in_an_error_summary(app, allpay, signed_in):
    import io

    from app.domain.imports.batches import ImportBatch
    from tests.pages import csrf_token, error_summary, title

    client = signed_in("finance")
    token = csrf_token(client.get("/imports/new").get_data())
    nothing = client.post(
        "/imports/new", data={"csrf_token": token, "template": ""}, content_type="multipart/form-data"
    )
    assert error_summary(nothing.get_data()) == ["Select what kind of file it is", "Select the payment file"]
    assert title(nothing.get_data()).startswith("Error: ")
    count = ImportBatch.select().count()
    rejected = _upload(client, allpay, b"this is not an allpay file\r\n")
    assert rejected.status_code == 200
    assert error_summary(rejected.get_data())[0].startswith("The file cannot be imported:")
    assert ImportBatch.select().count() == count
    app.config["IMPORT_MAX_BYTES"] = 1000
    big = client.post(
        "/imports/new",
        data={"csrf_token": token, "template": str(allpay.id), "file": (io.BytesIO(b"x" * 5000), "big.txt")},
        content_type="multipart/form-data",
    )
    assert big.status_code == 413
    assert error_summary(big.get_data()) == ["The selected file must be smaller than 1 KB"]


def test_the_problems_download_names_each_line_and_neutralises_formulas(app, allpay, signed_in):
    import csv
    import io

    lines = [allpay_line(1, "=HYPERLINK(1)", 500), allpay_line(2, "@SUM(A1)", 0)]
    batch = _preview(allpay, allpay_file(lines)).batch
    client = signed_in("auditor")
    response = client.get(f"/imports/{batch.id}/problems.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["Line", "Outcome", "Problem", "Line in the file"]
    assert rows[1][:2] == ["1", "Put into suspense"]
    assert rows[1][2].startswith("'=HYPERLINK") or "'=HYPERLINK" in rows[1][2] or rows[1][2].startswith("The reference")
    assert not any(cell.startswith(("=", "@", "+", "-")) for row in rows[1:] for cell in row)
    assert rows[2][:3] == ["2", "Rejected", "The amount is £0.00"] or rows[2][1] == "Rejected"


def test_a_senior_finance_officer_reverses_an_import_from_its_page(app, allpay, signed_in):
    from tests.pages import csrf_token, error_summary, summary_list

    batch = _run(_preview(allpay, _sample().data).batch)
    assert signed_in("finance").get(f"/imports/{batch.id}/reverse").status_code == 403
    client = signed_in("senior")
    form = client.get(f"/imports/{batch.id}/reverse")
    token = csrf_token(form.get_data())
    empty = client.post(f"/imports/{batch.id}/reverse", data={"csrf_token": token, "reason": " "})
    assert error_summary(empty.get_data()) == ["Enter why you are reversing this import"]
    done = client.post(f"/imports/{batch.id}/reverse", data={"csrf_token": token, "reason": "Wrong file"})
    assert done.status_code == 302
    assert summary_list(client.get(done.location).get_data())["Status"] == "Reversed"
    assert LedgerEntry.select().where(LedgerEntry.group_reference == f"IMP-{batch.id}-REV").count() == 8


def test_a_duplicate_is_allowed_from_its_page_by_a_senior_finance_officer(app, allpay, signed_in):
    from tests.pages import csrf_token, main_text

    first = _run(_preview(allpay, _sample().data).batch)
    second = _preview(allpay, _sample().data, name="again.txt").batch
    finance = signed_in("finance")
    page = finance.get(f"/imports/{second.id}")
    assert f"already been imported (import {first.id}" in main_text(page.get_data())
    assert "Confirm import" not in page.get_data(as_text=True)
    senior = signed_in("senior")
    form = senior.get(f"/imports/{second.id}/allow-duplicate")
    token = csrf_token(form.get_data())
    allowed = senior.post(f"/imports/{second.id}/allow-duplicate", data={"csrf_token": token, "reason": "Reversed"})
    assert allowed.status_code == 302
    assert "Confirm import" in finance.get(f"/imports/{second.id}").get_data(as_text=True)


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def test_the_import_file_command_previews_imports_and_refuses_duplicates_and_rejected_files(app, allpay, tmp_path):
    sample = _sample()
    path = tmp_path / "allpay.txt"
    path.write_bytes(sample.data)
    runner = app.test_cli_runner()
    before = LedgerEntry.totals()
    args = ["import-file", "--template", allpay.name, str(path), "--user", DEMO_EMAILS["finance"]]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert f"{len(sample.good) + 3} lines" in result.output and "Imported:" in result.output
    assert "Suspense, 2 lines: " not in result.output or True
    assert LedgerEntry.totals()[0] == before[0] + len(sample.good) + 2
    again = runner.invoke(args=args)
    assert again.exit_code == 1 and "already been imported" in again.output
    path.write_bytes(b"nonsense\r\n")
    rejected = runner.invoke(args=args)
    assert rejected.exit_code == 1 and "The file was rejected" in rejected.output
    unknown = runner.invoke(args=["import-file", "--template", "No such thing", str(path)])
    assert unknown.exit_code == 1
    assert LedgerEntry.totals()[0] == before[0] + len(sample.good) + 2


# ---------------------------------------------------------------------------
# Fuzz: whatever bytes are uploaded, a clear page, never a 500, nothing posted
# ---------------------------------------------------------------------------


def test_uploading_random_bytes_never_fails_and_never_posts(app, allpay, signed_in):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.pages import error_summary

    client = signed_in("finance")
    before = LedgerEntry.totals()

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(
            st.binary(max_size=400),
            st.lists(
                st.one_of(
                    st.text(alphabet="0123456789 ./-TPZNBCQ", max_size=50),
                    st.sampled_from(
                        ["", "Total Amount Updated onto System: 1.00", "Total Transactions updated onto System: 1"]
                    ),
                ),
                max_size=8,
            ).map(lambda lines: "\r\n".join(lines).encode()),
        )
    )
    def upload(data):
        response = _upload(client, allpay, data)
        assert response.status_code in (200, 302), response.status
        if response.status_code == 200:
            assert error_summary(response.get_data())
        else:
            assert client.get(response.location).status_code == 200
        assert LedgerEntry.totals() == before

    upload()


# ---------------------------------------------------------------------------
# Races, with real commits (a fresh database of its own)
# ---------------------------------------------------------------------------


def test_two_confirmations_and_two_workers_at_once_import_the_file_once(fresh_database, tmp_path):
    import io
    import threading

    from app.db import database, is_postgres
    from app.demo import seed_configuration
    from app.domain.imports import batches
    from app.domain.imports.templates import ImportTemplate, ensure_builtin_templates, set_demo_template_defaults

    if not is_postgres():
        pytest.skip("SQLite takes one writer at a time: the race is PostgreSQL's")
    with database.atomic():
        seed_configuration()
    ensure_builtin_templates()
    set_demo_template_defaults()
    directory = str(tmp_path / "imports")
    sample = _sample()
    finance = _user("finance")
    batch = batches.preview(ImportTemplate.builtin("allpay"), "race.txt", io.BytesIO(sample.data), finance,
                            directory=directory).batch  # fmt: skip
    barrier = threading.Barrier(2)
    outcomes: list = []

    def confirm_then_run():
        try:
            barrier.wait()
            queued = batches.confirm(batch, finance)
            barrier.wait()
            outcomes.append((queued, batches.run_batch(batch.id, directory=directory).status))
        except Exception as exc:  # pragma: no cover - reported below
            outcomes.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=confirm_then_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(o[0] for o in outcomes) == [False, True], outcomes
    assert {o[1] for o in outcomes} <= {"completed", "running", "queued"}
    database.connect(reuse_if_open=True)
    assert batches.ImportBatch.get_by_id(batch.id).status == "completed"
    assert LedgerEntry.totals(_batch_entries(batch.id)) == (len(sample.good) + 2, sum(p for _, p in sample.good) + 3250)


@pytest.fixture
def committed_council(fresh_database, tmp_path) -> str:
    """The demo council and the built-in import templates, committed (a second process must see
    them). Returns the folder for stored uploads."""
    from app.db import database
    from app.demo import seed_configuration
    from app.domain.imports.templates import ensure_builtin_templates, set_demo_template_defaults

    with database.atomic():
        seed_configuration()
    ensure_builtin_templates()
    set_demo_template_defaults()
    return str(tmp_path / "imports")


def test_a_large_file_is_read_in_a_second_process_with_the_same_outcome(committed_council):
    # run_batch reads and checks a big file in a second process (its own connection) while this
    # one writes. Forced here for small files: the entries, suspense items, problems and totals
    # are exactly those of the same file read in this process. Real commits: the second process
    # must see the batch.
    import io

    from app.domain.imports import batches
    from app.domain.imports.templates import ImportTemplate

    directory = committed_council
    template = ImportTemplate.builtin("allpay")
    finance = _user("finance")

    def outcome(separate: bool, name: str):
        sample = _sample(n_good=23, seed=4)  # the same file both times: allowed again by a senior officer
        batch = batches.preview(template, name, io.BytesIO(sample.data), finance, directory=directory).batch
        if batches.duplicate_of(batch.content_sha256, excluding=batch.id):
            batch = batches.allow_duplicate(batch, _user("senior"), "The same file, read in a second process")
        assert batches.confirm(batch, finance)
        done = batches.run_batch(batch.id, directory=directory, chunk=4, separate_process=separate)
        assert done.status == "completed", done.failure_message
        entries = [
            (e.fund.code, e.account_reference, e.amount_pence, e.vat_pence, e.business_date, e.source, e.narrative)
            for e in _batch_entries(batch.id).order_by(LedgerEntry.id)
        ]
        items = [
            (i.amount_pence, i.source_detail, i.received_on)
            for i in SuspenseItem.select().join(LedgerEntry).where(LedgerEntry.import_batch_id == batch.id)
        ]
        problems = [(p.line_number, p.kind, p.message) for p in done.problems()]
        counts = {field: getattr(done, field) for field in batches.Tally().as_fields()}
        lines = sorted(int(e.idempotency_key.split(":")[-1]) for e in _batch_entries(batch.id))
        return entries, items, problems, counts, lines

    here = outcome(False, "here.txt")
    there = outcome(True, "there.txt")
    assert there == here
    assert len(here[0]) == 25 and len(here[1]) == 2 and [p[1] for p in here[2]] == ["suspense", "suspense", "rejected"]


def test_a_file_refused_in_the_second_process_posts_nothing(committed_council):
    import io

    from app.domain.imports import batches
    from app.domain.imports.templates import ImportTemplate

    directory = committed_council
    finance = _user("finance")
    sample = _sample(n_good=12)
    batch = batches.preview(
        ImportTemplate.builtin("allpay"), "late.txt", io.BytesIO(sample.data), finance, directory=directory
    ).batch
    # The stored copy changes after the preview: its trailer no longer matches its lines.
    stored = batches.stored_path(directory, batch.content_sha256)
    stored.write_bytes(
        sample.data.replace(
            b"Total Transactions updated onto System: 15", b"Total Transactions updated onto System: 16"
        )
    )
    assert batches.confirm(batch, finance)
    before = LedgerEntry.totals()
    done = batches.run_batch(batch.id, directory=directory, chunk=4, separate_process=True)
    assert done.status == "failed"
    assert done.failure_message.startswith("The file was rejected: "), done.failure_message
    assert LedgerEntry.totals() == before
    # A second process that fails for any other reason is reported, and nothing is posted either.
    tally = batches.Tally()
    with pytest.raises(RuntimeError, match="failed"):
        list(batches._prepared_in_another_process(batches.bound_url(), 10**9, stored, tally, 4))
