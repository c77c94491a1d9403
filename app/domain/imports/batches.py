"""Import batches: a payment file in, previewed, then posted to the ledger all at once or not at all.

The pipeline (docs/decisions.md, "The import pipeline"):

1. **Upload and preview.** The file is kept on disk under its SHA-256 (`IMPORT_STORAGE_DIR`,
   never in the database) so the worker can read it. `preview()` parses the whole file with
   the template's format and rules and counts what would happen to each line: posted to its
   fund, put into suspense (with the reason), skipped by a rule, or rejected (unreadable).
   Nothing is posted. The batch is "previewed".
2. **Confirm.** `confirm()` moves the batch from "previewed" to "queued" with a conditional
   UPDATE, so two clicks (or two tabs, or two people) queue it once, and the route enqueues
   the `run_import` job.
3. **Run.** `run_batch()` moves it from "queued" to "running" (again conditional, so two
   workers never both run it), then parses the file again and posts every line in ONE database
   transaction through `ledger.post_batch` (bulk, COPY on PostgreSQL) and opens suspense items
   with `suspense.open_items_bulk`. If the file is rejected (e.g. its trailer totals do not
   match), anything raises, or the worker dies, the transaction rolls back and nothing is
   posted: the batch is "failed" (or left "running" with a stale heartbeat) and can be run
   again. Every entry's idempotency key is `import:<batch id>:<line number>`, unique in the
   ledger, so even a bug could not post a line twice.
4. **Reverse.** A senior finance officer can reverse a completed batch with a reason: one
   linked reversal entry for every entry of the batch, posted in bulk through the ledger.
   Nothing is deleted.

**Duplicates.** A file whose SHA-256 matches a batch that is queued, running or completed is
refused unless a senior finance officer (Permission.APPROVE) allows it again with a reason,
which is audited. Failed and reversed batches do not count.

**Progress.** The posting transaction cannot commit progress as it goes (on SQLite it holds the
only write lock), so the job writes its progress and heartbeat to a small file next to the
stored upload; the page reads it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from peewee import (
    BigAutoField,
    BigIntegerField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
    fn,
)

from app.db import BaseModel, bound_url, bulk_write_cache, database, is_postgres, utcnow
from app.domain import audit
from app.domain.errors import DomainError, NotFound
from app.domain.funds import Fund
from app.domain.imports import formats
from app.domain.imports.formats import FileRejected, RowProblem
from app.domain.imports.templates import ImportTemplate
from app.domain.ledger import (
    MAX_ACCOUNT_REFERENCE_LENGTH,
    MAX_NARRATIVE_LENGTH,
    MAX_PAYER_NAME_LENGTH,
    MAX_SOURCE_REFERENCE_LENGTH,
    LedgerEntry,
    PostingRequest,
    post_batch,
    prepare_entries,
    write_entries,
    write_rows,
    write_transaction,
)
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.references import compiled_rule, rule_settings, validate_reference
from app.domain.ukdates import start_of_day_utc
from app.domain.users import Permission, User

STATUSES: dict[str, str] = {
    "previewed": "Not imported yet",
    "queued": "Waiting to start",
    "running": "Importing",
    "completed": "Imported",
    "failed": "Failed",
    "reversed": "Reversed",
}
# A file matching one of these batches is a duplicate; failed and reversed batches do not count.
DUPLICATE_STATUSES = ("queued", "running", "completed")
PROBLEM_KINDS: dict[str, str] = {"rejected": "Rejected", "suspense": "Put into suspense", "skipped": "Skipped"}
MAX_FILE_NAME_LENGTH = 255
MAX_MESSAGE_LENGTH = 500
MAX_TEXT_LENGTH = 1000
MAX_REASON_LENGTH = 1000
PREVIEW_PROBLEMS = 20
CHUNK = 5000
STALE_SECONDS = 120


class DuplicateFile(DomainError):
    """The same file (by SHA-256) was already imported."""

    def __init__(self, message: str, existing: ImportBatch):
        super().__init__(message, "file")
        self.existing = existing


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class ImportBatch(BaseModel):
    id = BigAutoField()
    template = ForeignKeyField(ImportTemplate, backref="batches", on_delete="RESTRICT")
    # As the template was called when the file came in (a template can be renamed).
    template_name = CharField(max_length=120, default="")
    file_name = CharField(max_length=MAX_FILE_NAME_LENGTH)
    content_sha256 = CharField(max_length=64, index=True)
    size_bytes = BigIntegerField()
    status = CharField(max_length=12, default="previewed", index=True)
    row_count = IntegerField(default=0)
    posted_count = IntegerField(default=0)
    suspense_count = IntegerField(default=0)
    skipped_count = IntegerField(default=0)
    rejected_count = IntegerField(default=0)
    file_total_pence = BigIntegerField(default=0)
    posted_total_pence = BigIntegerField(default=0)
    suspense_total_pence = BigIntegerField(default=0)
    skipped_total_pence = BigIntegerField(default=0)
    rows_done = IntegerField(default=0)
    # Each run (first, and any "run again") adds one; a run only finishes the attempt it started.
    attempts = IntegerField(default=0)
    uploaded_by = ForeignKeyField(User, backref="+", on_delete="RESTRICT")
    uploaded_at = DateTimeField(default=utcnow, index=True)
    confirmed_by = ForeignKeyField(User, null=True, backref="+", on_delete="RESTRICT")
    confirmed_at = DateTimeField(null=True)
    started_at = DateTimeField(null=True)
    finished_at = DateTimeField(null=True)
    failure_message = TextField(default="")
    override_duplicate_by = ForeignKeyField(User, null=True, backref="+", on_delete="RESTRICT")
    override_duplicate_reason = TextField(default="")
    reversed_by = ForeignKeyField(User, null=True, backref="+", on_delete="RESTRICT")
    reversed_at = DateTimeField(null=True)
    reversal_reason = TextField(default="")

    @property
    def status_name(self) -> str:
        return STATUSES.get(self.status, self.status)

    @property
    def short_hash(self) -> str:
        return self.content_sha256[:12]

    @property
    def group_reference(self) -> str:
        return f"IMP-{self.id}"

    @property
    def reversal_group_reference(self) -> str:
        return f"IMP-{self.id}-REV"

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "reversed")

    def problems(self, kind: str | None = None):
        query = ImportProblem.select().where(ImportProblem.batch == self)
        if kind:
            query = query.where(ImportProblem.kind == kind)
        return query.order_by(ImportProblem.line_number, ImportProblem.id)

    def suspense_reasons(self, limit: int = 10) -> list[tuple[str, int]]:
        """The commonest reasons lines went to suspense, with how many lines each."""
        count = fn.COUNT(ImportProblem.id)
        query = (
            ImportProblem.select(ImportProblem.message, count.alias("n"))
            .where((ImportProblem.batch == self) & (ImportProblem.kind == "suspense"))
            .group_by(ImportProblem.message)
            .order_by(count.desc(), ImportProblem.message)
            .limit(limit)
        )
        return [(row.message, int(row.n)) for row in query]


class ImportProblem(BaseModel):
    """A line that was not simply posted: rejected, put into suspense or skipped, and why."""

    id = BigAutoField()
    batch = ForeignKeyField(ImportBatch, backref="+", on_delete="CASCADE")
    line_number = IntegerField()
    kind = CharField(max_length=10)
    message = CharField(max_length=MAX_MESSAGE_LENGTH)
    # The line as it was in the file (cut short if very long).
    text = TextField(default="")

    class Meta:
        indexes = ((("batch", "kind", "line_number"), False),)

    @property
    def kind_name(self) -> str:
        return PROBLEM_KINDS.get(self.kind, self.kind)


# ---------------------------------------------------------------------------
# The stored file and the progress file
# ---------------------------------------------------------------------------


def stored_path(directory: str | os.PathLike, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a SHA-256")
    return Path(directory) / sha256


def store_upload(stream: BinaryIO, directory: str | os.PathLike) -> tuple[str, int]:
    """Copy an upload to `directory/<sha256>` while hashing it. Returns (sha256, size in bytes)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            while block := stream.read(1 << 20):
                digest.update(block)
                out.write(block)
                size += len(block)
        sha = digest.hexdigest()
        os.replace(temporary, stored_path(folder, sha))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return sha, size


def _progress_path(directory, batch_id: int) -> Path:
    return Path(directory) / f"batch-{int(batch_id)}.progress"


def write_progress(directory, batch_id: int, rows_done: int, attempt: int) -> None:
    path = _progress_path(directory, batch_id)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"rows_done": rows_done, "attempt": attempt, "heartbeat": time.time()}))
    os.replace(temporary, path)


@dataclass(frozen=True)
class Progress:
    rows_done: int
    rows: int
    heartbeat_age: float | None  # seconds since the worker last said it was alive; None if never

    @property
    def percent(self) -> int:
        if self.rows <= 0:
            return 0
        return max(0, min(100, (self.rows_done * 100) // self.rows))


def progress(batch: ImportBatch, directory) -> Progress:
    """How far a running batch has got (from its progress file)."""
    if batch.status in ("completed", "reversed"):
        return Progress(batch.row_count, batch.row_count, None)
    try:
        data = json.loads(_progress_path(directory, batch.id).read_text())
    except (OSError, ValueError):
        data = None
    if not data or data.get("attempt") != batch.attempts:
        age = (utcnow() - batch.started_at).total_seconds() if batch.started_at else None
        return Progress(0, batch.row_count, age)
    return Progress(int(data.get("rows_done", 0)), batch.row_count, max(0.0, time.time() - data["heartbeat"]))


def is_stale(batch: ImportBatch, directory, stale_seconds: float = STALE_SECONDS) -> bool:
    """A "running" batch whose worker has not been heard from for `stale_seconds` (killed part way)."""
    if batch.status != "running":
        return False
    age = progress(batch, directory).heartbeat_age
    return age is not None and age > stale_seconds


# ---------------------------------------------------------------------------
# Working out what happens to each line
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class Planned:
    """What will happen to one line. `kind`: "post", "suspense", "skipped" or "rejected"."""

    kind: str
    line_number: int
    amount_pence: int = 0
    reason: str = ""
    text: str = ""
    request: PostingRequest | None = None


def _cut(value, limit: int) -> str:
    if not value:
        return ""
    text = value.strip() if value.__class__ is str else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _code(value) -> str:
    """A template default (a model or its code) as an upper-case code."""
    if value is None:
        return ""
    code = getattr(value, "code", value)
    return str(code or "").strip().upper()


def _row_text(row) -> str:
    fields = getattr(row, "fields", None) or {}
    text = fields.get("_line") or fields.get("line") or ""
    if not text:
        text = f"{row.account_reference},{format_pence(row.amount_pence)},{row.business_date}"
    return _cut(text, MAX_TEXT_LENGTH)


class Planner:
    """Decides, line by line, where each line's money goes. Holds what it looks up once per file."""

    def __init__(self, template, *, batch_id: int = 0, user: User | None = None, file_name: str = ""):
        from app.domain.imports.rules import rules_for

        self.template = template
        self.batch_id = batch_id
        self.user = user
        self.file_name = file_name
        self.rules = rules_for(template)
        self.funds = {f.code.upper(): f for f in Fund.select()}
        self.methods = {m.code.upper(): m for m in MethodOfPayment.select()}
        options = getattr(template, "settings", None)
        if not isinstance(options, dict):
            options = getattr(template, "options", None)
            options = options if isinstance(options, dict) else {}
        self.default_fund = _code(getattr(template, "default_fund", None)) or _code(options.get("default_fund"))
        self.default_method = _code(getattr(template, "default_method", None)) or _code(options.get("default_method"))
        self.suspense_fund = self._find_suspense_fund(_code(options.get("suspense_fund")))
        # Funds a reference can be routed to when a line names none: enabled, not suspense, with formats
        # (as references.funds_matching). Their compiled rules are taken once for the whole file.
        self.compiled: dict[int, object] = {}
        self.routable = [
            f for f in sorted(self.funds.values(), key=lambda f: f.code) if f.enabled and not f.is_suspense
        ]
        self.routable = [f for f in self.routable if self.rule(f).formats]
        # Funds whose references are normalised alike (the same characters taken out) share one
        # normalisation per line: (normalise, [funds]) groups, and per day each fund's format tests.

        groups: dict[str, tuple] = {}
        for fund in self.routable:
            removed = rule_settings(fund).remove_characters or ""
            groups.setdefault(removed, (self.rule(fund).normalise, []))[1].append(fund)
        self.route_groups = list(groups.values())
        self.route_tests: dict[dt.date, list] = {}
        self.group_reference = f"IMP-{batch_id}" if batch_id else ""
        self.accounts: dict[int, set[str]] = {}
        self.moments: dict[dt.date, dt.datetime] = {}
        self.narrative = _cut(f"Import: {template.name}", MAX_NARRATIVE_LENGTH)
        self.codes: dict = {}

    def _code(self, value) -> str:
        """`_code` of a line's fund or method code, remembered: a file repeats a handful of codes."""
        found = self.codes.get(value)
        if found is None:
            found = _code(value)
            if len(self.codes) < 10_000:
                self.codes[value] = found
        return found

    def _find_suspense_fund(self, code: str) -> Fund | None:
        if code and code in self.funds and self.funds[code].is_suspense:
            return self.funds[code]
        suspense = sorted((f for f in self.funds.values() if f.is_suspense), key=lambda f: (f.code != "SUSP", f.code))
        return suspense[0] if suspense else None

    def rule(self, fund: Fund):
        """The fund's compiled reference rule, looked up once per file (a file is read in seconds)."""
        found = self.compiled.get(fund.id)
        if found is None:
            found = self.compiled[fund.id] = compiled_rule(fund)
        return found

    def _tests_on(self, day: dt.date) -> list:
        """[(normalise, [(fund, (passes, …)), …]), …]: every routable fund's formats in effect on `day`."""
        found = self.route_tests.get(day)
        if found is None:
            if len(self.route_tests) > 366:
                self.route_tests.clear()
            found = self.route_tests[day] = [
                (normalise, [(f, tuple(x.passes for x in self.rule(f).active_formats(day, "staff"))) for f in funds])
                for normalise, funds in self.route_groups
            ]
        return found

    def route(self, reference: str, day: dt.date) -> list[tuple[Fund, str]]:
        """(fund, the reference as that fund normalises it) for every fund with a format in effect
        that the reference passes: references.funds_matching's rule (spec §6), with every fund's
        compiled formats held for the file."""
        matches = []
        for normalise, tests in self._tests_on(day):
            normalised = normalise(reference)
            for fund, passes in tests:
                for test in passes:
                    if test(normalised):
                        matches.append((fund, normalised))
                        break
        return matches

    def taken_at(self, day: dt.date) -> dt.datetime:
        """Midday in London on the line's business date, as naive UTC: its business date is that day."""
        moment = self.moments.get(day)
        if moment is None:
            moment = self.moments[day] = start_of_day_utc(day) + dt.timedelta(hours=12)
        return moment

    def _account_exists(self, fund: Fund, reference: str) -> bool:
        known = self.accounts.get(fund.id)
        if known is None:
            from app.domain.references import AccountHolder

            query = AccountHolder.select(AccountHolder.reference).where(AccountHolder.fund == fund.id)
            known = self.accounts[fund.id] = {r for (r,) in query.tuples().iterator()}
        return reference in known

    def _fund_and_reference(self, fund_code: str, reference: str, amount: int, day: dt.date, method):
        """(fund, normalised reference, None) to post, or (None, reference, reason) for suspense."""

        routed = False
        if fund_code:
            fund = self.funds.get(fund_code)
            if fund is None:
                return None, reference, f"There is no fund with the code {fund_code}"
        else:
            if not reference:
                return None, reference, "The line has no reference and no fund"
            matches = self.route(reference, day)
            if not matches:
                return None, reference, f"The reference {reference} matches no fund's reference format"
            if len(matches) > 1:
                codes = ", ".join(sorted(f.code for f, _ in matches))
                return None, reference, f"The reference {reference} could be for more than one fund ({codes})"
            fund, normalised = matches[0]
            routed = True
        if fund.is_suspense:
            return None, reference, "The file puts this line in suspense"
        if not fund.enabled:
            return None, reference, f"{fund.name} is not taking payments"
        rule = self.rule(fund)
        if not routed:
            normalised = rule.normalise(reference)
        if not normalised:
            return None, reference, f"The line has no {fund.reference_label.lower()}"
        if len(normalised) > MAX_ACCOUNT_REFERENCE_LENGTH:
            return None, reference, f"The reference is longer than {MAX_ACCOUNT_REFERENCE_LENGTH} characters"
        if not routed and rule.formats and rule.matching_format(normalised, day, "staff") is None:
            # The slow path, for failures only: the fund's own words for what is wrong.
            result = validate_reference(fund, reference, on=day, channel="staff", method=method)
            return None, reference, f"{fund.code} reference {normalised} failed: {result.message}"
        if fund.account_must_exist and not self._account_exists(fund, normalised):
            return None, reference, f"There is no {fund.name} account with the reference {normalised}"
        return fund, normalised, None

    def plan(self, item) -> Planned:
        if isinstance(item, RowProblem):
            return Planned(
                "rejected",
                item.line_number,
                0,
                _cut(item.message, MAX_MESSAGE_LENGTH),
                _cut(item.text, MAX_TEXT_LENGTH),
            )
        if self.rules.rules:
            outcome = self.rules.apply(item)
            row, decision = outcome.row, outcome.decision
        else:  # no rules: nothing to decide (the usual case, and a million lines of it)
            outcome, row, decision = None, item, "post"
        line = row.line_number
        amount = row.amount_pence
        text = ""
        if decision == "skip":
            reason = outcome.reason or "A rule skips this line"
            return Planned("skipped", line, amount, _cut(reason, MAX_MESSAGE_LENGTH), _row_text(row))
        method_code = self._code(row.method_code) or self.default_method
        method = self.methods.get(method_code)
        if method is None:
            message = (
                f"There is no method of payment with the code {method_code}"
                if method_code
                else ("The line has no method of payment and the template sets none")
            )
            return Planned("rejected", line, amount, message, _row_text(row))
        if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
            return Planned("rejected", line, 0, "The amount is £0.00", _row_text(row))
        reference = (row.account_reference or "").strip()
        day = row.business_date
        if decision == "suspense":
            fund, normalised, reason = None, reference, outcome.reason or "A rule puts this line in suspense"
        else:
            fund, normalised, reason = self._fund_and_reference(
                self._code(row.fund_code) or self.default_fund, reference, amount, day, method
            )
        key = f"import:{self.batch_id}:{line}"
        payer = _cut(row.payer_name, MAX_PAYER_NAME_LENGTH)
        narrative = _cut(row.narrative, MAX_NARRATIVE_LENGTH) or self.narrative
        source_reference = _cut(row.source_reference, MAX_SOURCE_REFERENCE_LENGTH) or _cut(
            f"{self.file_name} line {line}", MAX_SOURCE_REFERENCE_LENGTH
        )
        if fund is not None:
            request = PostingRequest(
                idempotency_key=key,
                fund=fund,
                account_reference=normalised,
                amount_pence=amount,
                method=method,
                source="import",
                taken_at=self.taken_at(day),
                user=self.user,
                narrative=narrative,
                payer_name=payer,
                source_reference=source_reference,
                group_reference=self.group_reference,
                import_batch_id=self.batch_id or None,
                # The money has been taken (that is what the file reports): post it even if the
                # method has since been disabled. The fund was checked above.
                money_already_taken=True,
            )
            return Planned("post", line, amount, "", text, request)
        reason = _cut(reason, MAX_MESSAGE_LENGTH)
        if amount < 0:
            return Planned(
                "rejected",
                line,
                amount,
                _cut(f"A negative amount cannot go to suspense: {reason}", MAX_MESSAGE_LENGTH),
                _row_text(row),
            )
        if self.suspense_fund is None:
            return Planned(
                "rejected",
                line,
                amount,
                _cut(f"There is no suspense fund for: {reason}", MAX_MESSAGE_LENGTH),
                _row_text(row),
            )
        from app.domain.suspense import suspense_request

        request = suspense_request(
            self.suspense_fund,
            amount,
            method,
            source="import",
            idempotency_key=key,
            reference=reference[:MAX_ACCOUNT_REFERENCE_LENGTH],
            taken_at=self.taken_at(day),
            payer_name=payer,
            narrative=narrative,
            user=self.user,
            source_reference=source_reference,
            import_batch_id=self.batch_id or None,
        )
        if self.group_reference:
            request = dataclasses.replace(request, group_reference=self.group_reference)
        return Planned("suspense", line, amount, reason, _row_text(row), request)


def plan_file(template, data: BinaryIO, planner: Planner) -> Iterator[Planned]:
    """Every line of the file, planned. Raises FileRejected (formats) when the whole file is refused."""
    for item in formats.read_rows(template, data):  # through the module, so a test can replace it
        yield planner.plan(item)


@dataclass
class Tally:
    rows: int = 0
    file_total: int = 0
    posted: int = 0
    posted_total: int = 0
    suspense: int = 0
    suspense_total: int = 0
    skipped: int = 0
    skipped_total: int = 0
    rejected: int = 0
    problems: list = field(default_factory=list)

    def add(self, planned: Planned) -> None:
        self.rows += 1
        self.file_total += planned.amount_pence
        if planned.kind == "post":
            self.posted += 1
            self.posted_total += planned.amount_pence
        elif planned.kind == "suspense":
            self.suspense += 1
            self.suspense_total += planned.amount_pence
        elif planned.kind == "skipped":
            self.skipped += 1
            self.skipped_total += planned.amount_pence
        else:
            self.rejected += 1

    def as_fields(self) -> dict:
        return {
            "row_count": self.rows,
            "file_total_pence": self.file_total,
            "posted_count": self.posted,
            "posted_total_pence": self.posted_total,
            "suspense_count": self.suspense,
            "suspense_total_pence": self.suspense_total,
            "skipped_count": self.skipped,
            "skipped_total_pence": self.skipped_total,
            "rejected_count": self.rejected,
        }


def _problem_row(planned: Planned) -> tuple:
    """(line number, kind, message, text): a line not simply posted, as `_write_problems` takes it."""
    return (planned.line_number, planned.kind, planned.reason, planned.text)


def _write_problems(batch_id: int, problems: list[tuple]) -> None:
    """Store a batch's problem lines (`_problem_row`s) in bulk."""
    if problems:
        columns = ("batch_id", "line_number", "kind", "message", "text")
        write_rows("import_problem", columns, [(batch_id, *problem) for problem in problems])


class _ProblemWriter:
    """Writes problem lines in bulk as they come."""

    def __init__(self, batch_id: int):
        self.batch_id = batch_id
        self.rows: list[tuple] = []

    def add(self, planned: Planned) -> None:
        self.rows.append(_problem_row(planned))
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        _write_problems(self.batch_id, self.rows)
        self.rows = []


# ---------------------------------------------------------------------------
# Duplicates
# ---------------------------------------------------------------------------


def duplicate_of(sha256: str, *, excluding: int | None = None) -> ImportBatch | None:
    """The batch that already imported (or is importing) a file with this hash, if any."""
    query = ImportBatch.select().where(
        (ImportBatch.content_sha256 == sha256) & ImportBatch.status.in_(DUPLICATE_STATUSES)
    )
    if excluding is not None:
        query = query.where(ImportBatch.id != excluding)
    return query.order_by(ImportBatch.id).first()


def duplicate_message(existing: ImportBatch) -> str:
    from app.domain.ukdates import to_london

    when = to_london(existing.uploaded_at).strftime("%-d %B %Y")
    return (
        f"This file has already been imported (import {existing.id}, {existing.file_name}, uploaded on {when}). "
        "A senior finance officer can allow it to be imported again"
    )


def _lock_hash(sha256: str) -> None:
    """Serialise confirmations of the same file. SQLite: the write transaction already does."""
    if is_postgres():
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"import:{sha256}",))


# ---------------------------------------------------------------------------
# Preview, confirm, run
# ---------------------------------------------------------------------------


def _checked_uploader(actor) -> User:
    if not isinstance(actor, User) or actor.id is None:
        raise DomainError("Files are imported by a signed-in user")
    if not actor.can(Permission.IMPORT_FILES):
        raise DomainError("You do not have permission to import files")
    return actor


def _checked_reason(reason, what: str) -> str:
    text = (reason or "").strip() if isinstance(reason, str) or reason is None else None
    if text is None:
        raise DomainError("The reason must be text", "reason")
    if not text:
        raise DomainError(f"Enter why {what}", "reason")
    if len(text) > MAX_REASON_LENGTH:
        raise DomainError(f"The reason must be {MAX_REASON_LENGTH} characters or fewer", "reason")
    return text


@dataclass
class PreviewResult:
    batch: ImportBatch
    duplicate: ImportBatch | None
    first_problems: list[ImportProblem]


def preview(template, file_name: str, data: BinaryIO, actor, *, directory, ip_address: str = "") -> PreviewResult:
    """Store the file, work out what would happen to every line, and record a "previewed" batch.

    Raises FileRejected (the whole file cannot be read: nothing is recorded) or DomainError.
    Nothing is posted.
    """

    actor = _checked_uploader(actor)
    if getattr(template, "id", None) is None:
        raise DomainError("Choose the kind of file", "template")
    if not getattr(template, "is_active", True):
        raise DomainError(f"{template.name} files cannot be imported at the moment", "template")
    name = _cut(Path(str(file_name or "")).name, MAX_FILE_NAME_LENGTH) or "upload"
    sha, size = store_upload(data, directory)
    if size == 0:
        raise FileRejected("The selected file is empty")
    planner = Planner(template, file_name=name)
    tally = Tally()
    # Problem lines wait in a temporary file, not in memory (a bad file can have a million).
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        with stored_path(directory, sha).open("rb") as stored:
            for planned in plan_file(template, stored, planner):
                tally.add(planned)
                if planned.kind != "post":
                    spool.write(json.dumps([planned.line_number, planned.kind, planned.reason, planned.text]) + "\n")
        spool.seek(0)
        batch = _record_preview(template, name, sha, size, actor, tally, spool, ip_address)
    return PreviewResult(batch, duplicate_of(sha, excluding=batch.id), list(batch.problems().limit(PREVIEW_PROBLEMS)))


def _record_preview(template, name, sha, size, actor, tally: Tally, spool, ip_address: str) -> ImportBatch:
    with write_transaction():
        batch = ImportBatch.create(
            template=template,
            template_name=template.name,
            file_name=name,
            content_sha256=sha,
            size_bytes=size,
            status="previewed",
            uploaded_by=actor,
            **tally.as_fields(),
        )
        writer = _ProblemWriter(batch.id)
        for line in spool:
            number, kind, reason, text = json.loads(line)
            writer.add(Planned(kind, number, 0, reason, text))
        writer.flush()
        audit.record(
            "import.preview",
            actor=actor,
            object_type="import_batch",
            object_id=batch.id,
            summary=f"Uploaded {name} ({template.name}): {tally.rows:,} lines, {format_pence(tally.file_total)}",
            after={
                "file_name": name,
                "sha256": sha,
                "size_bytes": size,
                "template": template.name,
                **tally.as_fields(),
            },
            ip_address=ip_address,
        )
    return batch


def allow_duplicate(batch: ImportBatch, actor, reason: str, *, ip_address: str = "") -> ImportBatch:
    """A senior finance officer allows this file to be imported although the same file was before."""
    if not isinstance(actor, User) or actor.id is None or not actor.can(Permission.APPROVE):
        raise DomainError("Only a senior finance officer can allow a file to be imported again")
    reason = _checked_reason(reason, "this file should be imported again")
    if batch.status != "previewed":
        raise DomainError("This file has already been confirmed")
    existing = duplicate_of(batch.content_sha256, excluding=batch.id)
    with write_transaction():
        updated = (
            ImportBatch.update(override_duplicate_by=actor, override_duplicate_reason=reason)
            .where((ImportBatch.id == batch.id) & (ImportBatch.status == "previewed"))
            .execute()
        )
        if updated != 1:
            raise DomainError("This file has already been confirmed")
        audit.record(
            "import.allow_duplicate",
            actor=actor,
            object_type="import_batch",
            object_id=batch.id,
            summary=f"Allowed {batch.file_name} to be imported again: {reason}",
            after={"sha256": batch.content_sha256, "reason": reason, "duplicate_of": existing.id if existing else None},
            ip_address=ip_address,
        )
    return ImportBatch.get_by_id(batch.id)


def confirm(batch: ImportBatch, actor, *, ip_address: str = "") -> bool:
    """Queue a previewed batch. True if this call queued it; False if it was already confirmed.

    Refuses (DuplicateFile) when the same file is queued, running or imported in another batch
    and no senior finance officer has allowed it.
    """
    actor = _checked_uploader(actor)
    with write_transaction():
        _lock_hash(batch.content_sha256)
        current = ImportBatch.get_by_id(batch.id)
        if current.status != "previewed":
            return False
        existing = duplicate_of(current.content_sha256, excluding=current.id)
        if existing is not None and current.override_duplicate_by_id is None:
            raise DuplicateFile(duplicate_message(existing), existing)
        updated = (
            ImportBatch.update(status="queued", confirmed_by=actor, confirmed_at=utcnow())
            .where((ImportBatch.id == current.id) & (ImportBatch.status == "previewed"))
            .execute()
        )
        if updated != 1:
            return False
        audit.record(
            "import.confirm",
            actor=actor,
            object_type="import_batch",
            object_id=current.id,
            summary=f"Confirmed the import of {current.file_name}: {current.row_count:,} lines, "
            f"{format_pence(current.file_total_pence)}",
            ip_address=ip_address,
        )
    return True


def run_again(
    batch: ImportBatch, actor, *, directory, stale_seconds: float = STALE_SECONDS, ip_address: str = ""
) -> bool:
    """Queue a failed batch, or one left "running" by a worker that died, to run again."""
    actor = _checked_uploader(actor)
    with write_transaction():
        _lock_hash(batch.content_sha256)
        current = ImportBatch.get_by_id(batch.id)
        if current.status == "failed":
            pass
        elif current.status == "running" and is_stale(current, directory, stale_seconds):
            pass
        else:
            return False
        existing = duplicate_of(current.content_sha256, excluding=current.id)
        if existing is not None and current.override_duplicate_by_id is None:
            raise DuplicateFile(duplicate_message(existing), existing)
        updated = (
            ImportBatch.update(status="queued", failure_message="")
            .where(
                (ImportBatch.id == current.id)
                & (ImportBatch.status == current.status)
                & (ImportBatch.attempts == current.attempts)
            )
            .execute()
        )
        if updated != 1:
            return False
        audit.record(
            "import.run_again",
            actor=actor,
            object_type="import_batch",
            object_id=current.id,
            summary=f"Asked for the import of {current.file_name} to run again (it was {current.status_name.lower()})",
            ip_address=ip_address,
        )
    return True


def _fail(batch_id: int, attempt: int, message: str) -> None:
    with write_transaction():
        ImportBatch.update(status="failed", failure_message=message[:2000], finished_at=utcnow()).where(
            (ImportBatch.id == batch_id) & (ImportBatch.status == "running") & (ImportBatch.attempts == attempt)
        ).execute()


# A file this big is read and checked in a second process while this one writes (run_batch).
# Starting that process costs about a second; below this size (~45,000 allpay lines) it would
# not pay for itself.
SEPARATE_PROCESS_BYTES = 2_000_000
# SQLite's page cache while an import writes (db.bulk_write_cache), in MiB.
WRITE_CACHE_MIB = 64


@dataclass
class PreparedPiece:
    """Up to CHUNK lines of a file, ready to write: what `run_batch` writes in one go."""

    rows: list[tuple]  # ledger.prepare_entries rows, in line order
    suspense: list[tuple]  # (index in rows, fund id, amount, business date, reason) of suspense lines
    problems: list[tuple]  # _problem_row of each line not posted to its fund
    rows_done: int  # lines of the file read so far


def _prepare_pieces(batch: ImportBatch, data: BinaryIO, tally: Tally, chunk: int) -> Iterator[PreparedPiece]:
    """Read, plan and prepare the whole file (nothing is written), a piece of at most `chunk` lines
    at a time: the rows of its entries through the ledger's own checks (`prepare_entries`), with
    its suspense lines and problem lines."""
    actor = batch.confirmed_by or batch.uploaded_by
    planner = Planner(batch.template, batch_id=batch.id, user=actor, file_name=batch.file_name)
    created_at = utcnow()  # one moment for the whole import
    lines: list[Planned] = []

    def piece() -> PreparedPiece:
        postable = [planned for planned in lines if planned.request is not None]
        prepared = prepare_entries(
            [planned.request for planned in postable],
            import_batch_id=batch.id,
            group_reference=batch.group_reference,
            created_at=created_at,
        )
        rows, suspense = [], []
        for planned, (request, row, day) in zip(postable, prepared, strict=True):
            if planned.kind == "suspense":
                suspense.append((len(rows), request.fund.id, request.amount_pence, day, planned.reason))
            rows.append(row)
        problems = [_problem_row(planned) for planned in lines if planned.kind != "post"]
        lines.clear()
        return PreparedPiece(rows, suspense, problems, tally.rows)

    for planned in plan_file(batch.template, data, planner):
        tally.add(planned)
        lines.append(planned)
        if len(lines) >= chunk:
            yield piece()
    yield piece()


def _prepared_here(batch: ImportBatch, path: Path, tally: Tally, chunk: int) -> Iterator[PreparedPiece]:
    with path.open("rb") as data:
        yield from _prepare_pieces(batch, data, tally, chunk)


def _prepared_in_another_process(url: str, batch_id: int, path: Path, tally: Tally, chunk: int):
    """`_prepare_pieces` run by a new process on its own connection (it only reads configuration),
    each piece handed over through a pipe as soon as it is ready. The pipe holds about one piece,
    so that process keeps one piece ahead of the writing and memory stays flat. Its errors are
    raised here as the same exceptions; if it dies, RuntimeError. Fills `tally` at the end."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited connections
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_prepare_for_parent, args=(sender, url, batch_id, str(path), chunk), name=f"import-{batch_id}"
    )
    process.start()
    sender.close()
    try:
        while True:
            try:
                kind, value = receiver.recv()
            except EOFError:
                raise RuntimeError("The process reading the file stopped") from None
            if kind == "piece":
                yield value
            elif kind == "done":
                for counted in dataclasses.fields(Tally):
                    setattr(tally, counted.name, getattr(value, counted.name))
                return
            elif kind == "rejected":
                raise FileRejected(value)
            elif kind == "refused":
                raise DomainError(value)
            else:
                raise RuntimeError(f"The process reading the file failed ({value})")
    finally:
        receiver.close()
        process.join(timeout=10)
        if process.is_alive():  # pragma: no cover - only if it hangs
            process.kill()
            process.join()


def _prepare_for_parent(sender, url: str, batch_id: int, path: str, chunk: int) -> None:
    """The second process of `_prepared_in_another_process`."""
    from app.db import bind_database

    db = bind_database(url)
    try:
        batch = ImportBatch.get_by_id(batch_id)
        tally = Tally()
        with open(path, "rb") as data:
            for piece in _prepare_pieces(batch, data, tally, chunk):
                sender.send(("piece", piece))
        sender.send(("done", tally))
    except FileRejected as exc:
        sender.send(("rejected", exc.message))
    except DomainError as exc:
        sender.send(("refused", exc.message))
    except BaseException as exc:  # noqa: BLE001 - told to the parent, which rolls back and says so
        sender.send(("failed", type(exc).__name__))
    finally:
        sender.close()
        db.close()


def run_batch(batch_id: int, *, directory, chunk: int = CHUNK, separate_process: bool | None = None) -> ImportBatch:
    """Post a queued batch, all of it in one transaction, or none of it (the job calls this).

    The file is read, planned and its entries prepared (`_prepare_pieces`) in this process, or,
    for a file of SEPARATE_PROCESS_BYTES or more (or when `separate_process` says so), in a
    second process while this one writes what it has already prepared: reading and checking a
    million lines and writing a million entries then take the longer of the two rather than
    their sum. Either way every write is made here, in this one transaction.

    Returns the batch as it ended: "completed" or "failed". A batch that is not "queued" (already
    run, or being run by another worker) is returned untouched.
    """
    from app.domain.suspense import open_items_bulk

    with write_transaction():
        batch = ImportBatch.get_or_none(ImportBatch.id == batch_id)
        if batch is None:
            raise NotFound("There is no such import")
        started = (
            ImportBatch.update(status="running", attempts=ImportBatch.attempts + 1, started_at=utcnow(), rows_done=0)
            .where((ImportBatch.id == batch_id) & (ImportBatch.status == "queued"))
            .execute()
        )
    if started != 1:
        return batch
    batch = ImportBatch.get_by_id(batch_id)
    attempt = batch.attempts
    write_progress(directory, batch_id, 0, attempt)
    tally = Tally()
    try:
        path = stored_path(directory, batch.content_sha256)
        if not path.exists():
            raise FileRejected("The stored copy of the file is missing: upload it again")
        actor = batch.confirmed_by or batch.uploaded_by
        if separate_process is None:
            separate_process = path.stat().st_size >= SEPARATE_PROCESS_BYTES
        url = bound_url()
        if url is None or ":memory:" in url:
            separate_process = False  # another process could not open this database
        with bulk_write_cache(WRITE_CACHE_MIB), write_transaction():
            query = ImportBatch.select().where(ImportBatch.id == batch_id)
            if is_postgres():
                query = query.for_update()
            locked = query.get()
            if locked.status != "running" or locked.attempts != attempt:
                raise RuntimeError("The import was taken over by another run")  # pragma: no cover
            if LedgerEntry.select().where(LedgerEntry.import_batch_id == batch_id).exists():
                raise RuntimeError("This import has entries in the ledger already")  # pragma: no cover
            ImportProblem.delete().where(ImportProblem.batch == batch_id).execute()
            if separate_process:
                pieces = _prepared_in_another_process(url, batch_id, path, tally, chunk)
            else:
                pieces = _prepared_here(batch, path, tally, chunk)
            for piece in pieces:
                written = write_entries(piece.rows)
                items = [(written[i][0], fund, amount, day, reason) for i, fund, amount, day, reason in piece.suspense]
                open_items_bulk(items, source="import")
                _write_problems(batch_id, piece.problems)
                write_progress(directory, batch_id, piece.rows_done, attempt)
            ImportBatch.update(
                status="completed", finished_at=utcnow(), rows_done=tally.rows, **tally.as_fields()
            ).where(ImportBatch.id == batch_id).execute()
            audit.record(
                "import.complete",
                actor=actor,
                object_type="import_batch",
                object_id=batch_id,
                summary=f"Imported {batch.file_name}: {tally.posted:,} posted ({format_pence(tally.posted_total)}), "
                f"{tally.suspense:,} to suspense ({format_pence(tally.suspense_total)}), "
                f"{tally.skipped:,} skipped, {tally.rejected:,} rejected",
                after=tally.as_fields(),
            )
    except FileRejected as exc:
        _fail(batch_id, attempt, f"The file was rejected: {exc.message}")
    except DomainError as exc:
        _fail(batch_id, attempt, f"Nothing was imported: {exc.message}")
    except Exception as exc:  # anything at all: the transaction rolled back, so say so and keep the batch
        _fail(batch_id, attempt, f"Nothing was imported: something went wrong ({type(exc).__name__}). Run it again.")
    write_progress(directory, batch_id, tally.rows, attempt)
    return ImportBatch.get_by_id(batch_id)


# ---------------------------------------------------------------------------
# Reversal
# ---------------------------------------------------------------------------


def why_not_reversible(batch: ImportBatch) -> str | None:
    if batch.status != "completed":
        return "Only an import that has been completed can be reversed"
    corrected = (
        LedgerEntry.select(fn.COUNT(LedgerEntry.id))
        .where(
            LedgerEntry.corrects.in_(LedgerEntry.select(LedgerEntry.id).where(LedgerEntry.import_batch_id == batch.id))
        )
        .scalar()
    )
    if corrected:
        return (
            f"{corrected:,} ledger {'entry already corrects' if corrected == 1 else 'entries already correct'} "
            "lines of this import (a reversal, journal, refund or suspense allocation). "
            "Undo those first, or correct the lines one by one"
        )
    return None


def reverse_batch(batch: ImportBatch, actor, reason: str, *, ip_address: str = "") -> int:
    """Reverse every entry of a completed batch: a linked entry of the opposite sign for each.

    Senior finance officers only (Permission.APPROVE), with a reason. Nothing is deleted; the
    batch becomes "reversed" and its suspense items are closed with a note. Returns how many
    reversal entries were posted.
    """
    from app.domain.suspense import SuspenseItem, SuspenseNote
    from app.domain.vat import VatCode

    if not isinstance(actor, User) or actor.id is None or not actor.can(Permission.APPROVE):
        raise DomainError("Only a senior finance officer can reverse an import")
    reason = _checked_reason(reason, "you are reversing this import")
    with write_transaction():
        query = ImportBatch.select().where(ImportBatch.id == batch.id)
        if is_postgres():
            query = query.for_update()
        current = query.get()
        problem = why_not_reversible(current)
        if problem:
            raise DomainError(problem, "reason")
        updated = (
            ImportBatch.update(status="reversed", reversed_by=actor, reversed_at=utcnow(), reversal_reason=reason)
            .where((ImportBatch.id == current.id) & (ImportBatch.status == "completed"))
            .execute()
        )
        if updated != 1:  # pragma: no cover - the lock makes this unreachable
            raise DomainError("This import changed while you were reversing it: try again")
        funds = {f.id: f for f in Fund.select()}
        methods = {m.id: m for m in MethodOfPayment.select()}
        vat_codes = {v.id: v for v in VatCode.select()}
        narrative = _cut(f"Reversal of import {current.id}: {reason}", MAX_NARRATIVE_LENGTH)

        def requests() -> Iterator[PostingRequest]:
            last = 0
            while True:
                page = list(
                    LedgerEntry.select()
                    .where(
                        (LedgerEntry.import_batch_id == current.id)
                        & LedgerEntry.corrects.is_null()
                        & (LedgerEntry.id > last)
                    )
                    .order_by(LedgerEntry.id)
                    .limit(CHUNK)
                )
                if not page:
                    return
                for entry in page:
                    last = entry.id
                    yield PostingRequest(
                        idempotency_key=f"import-reversal:{current.id}:{entry.id}",
                        fund=funds[entry.fund_id],
                        account_reference=entry.account_reference,
                        amount_pence=-entry.amount_pence,
                        method=methods[entry.method_id],
                        vat_code=vat_codes.get(entry.vat_code_id) if entry.vat_code_id else None,
                        money_already_taken=True,
                        source="reversal",
                        user=actor,
                        corrects=entry,
                        narrative=narrative,
                        source_reference=entry.receipt_reference,
                    )

        result = post_batch(requests(), group_reference=current.reversal_group_reference)
        items = SuspenseItem.select(SuspenseItem.id).where(
            SuspenseItem.ledger_entry.in_(
                LedgerEntry.select(LedgerEntry.id).where(LedgerEntry.import_batch_id == current.id)
            )
            & (SuspenseItem.status == "open")
        )
        item_ids = [i.id for i in items]
        for start in range(0, len(item_ids), CHUNK):
            ids = item_ids[start : start + CHUNK]
            SuspenseItem.update(remaining_pence=0, status="allocated", updated_at=utcnow()).where(
                SuspenseItem.id.in_(ids)
            ).execute()
            SuspenseNote.insert_many(
                [
                    {"item": i, "user": actor.id, "text": f"Closed: import {current.id} was reversed ({reason})"}
                    for i in ids
                ]
            ).execute()
        audit.record(
            "import.reverse",
            actor=actor,
            object_type="import_batch",
            object_id=current.id,
            summary=f"Reversed import {current.id} ({current.file_name}): {result.count:,} entries, "
            f"{format_pence(-result.total_pence)}: {reason}",
            after={"entries": result.count, "total_pence": result.total_pence, "reason": reason},
            ip_address=ip_address,
        )
    return result.count


def visible_batch(batch_id) -> ImportBatch:
    try:
        number = int(batch_id)
    except (TypeError, ValueError):
        raise NotFound("There is no such import") from None
    batch = ImportBatch.get_or_none(ImportBatch.id == number)
    if batch is None:
        raise NotFound("There is no such import")
    return batch


@dataclass
class BatchFilters:
    status: str = ""
    template_id: int | None = None
    uploaded_by_id: int | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None


def search(filters: BatchFilters | None = None):
    """Batches matching the filters, newest first."""
    filters = filters or BatchFilters()
    query = ImportBatch.select(ImportBatch, User).join(User, on=(ImportBatch.uploaded_by == User.id))
    if filters.status in STATUSES:
        query = query.where(ImportBatch.status == filters.status)
    if filters.template_id:
        query = query.where(ImportBatch.template == filters.template_id)
    if filters.uploaded_by_id:
        query = query.where(ImportBatch.uploaded_by == filters.uploaded_by_id)
    if filters.date_from:
        query = query.where(ImportBatch.uploaded_at >= start_of_day_utc(filters.date_from))
    if filters.date_to:
        query = query.where(ImportBatch.uploaded_at < start_of_day_utc(filters.date_to + dt.timedelta(days=1)))
    return query.order_by(ImportBatch.uploaded_at.desc(), ImportBatch.id.desc())


def uploaders():
    return User.select().where(User.id.in_(ImportBatch.select(ImportBatch.uploaded_by).distinct())).order_by(User.name)


def problem_rows(batch: ImportBatch) -> Iterable[tuple]:
    """(line, kind, message, text) for every problem line, in line order (for the CSV download)."""
    last = (-1, 0)
    while True:
        page = list(
            ImportProblem.select()
            .where(
                (ImportProblem.batch == batch)
                & (
                    (ImportProblem.line_number > last[0])
                    | ((ImportProblem.line_number == last[0]) & (ImportProblem.id > last[1]))
                )
            )
            .order_by(ImportProblem.line_number, ImportProblem.id)
            .limit(CHUNK)
        )
        if not page:
            return
        for problem in page:
            yield (problem.line_number, problem.kind_name, problem.message, problem.text)
        last = (page[-1].line_number, page[-1].id)
