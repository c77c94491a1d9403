"""Export templates: what to export, the layout of the file, its name and when it runs.

A template is configuration that finance owns (edited in the service, audited, never code). Its
selection and layout are kept as one JSON document (`definition`), checked by `parse_definition`;
every change bumps `version`, and each batch keeps a copy of the definition it was made with, so a
past batch can always be explained and made again.

Presets (`ensure_presets`) give every council a start: a daily council tax file for the back
office, a general ledger journal and the LocalGov IMS 15-column CSV (spec/file-formats.md §3).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import string
from dataclasses import dataclass, field

from peewee import CharField, DateField, DateTimeField, IntegerField, TextField

from app.db import database, utcnow
from app.domain import audit
from app.domain.configuration import ConfigModel, normalise_code
from app.domain.errors import DomainError
from app.domain.exports.formats import (
    DELIMITERS,
    ENCODINGS,
    FORMATS,
    KINDS,
    LINE_ENDINGS,
    MAX_FIELDS,
    FieldSpec,
    Layout,
    check_field,
    line_sources,
    record_sources,
)
from app.domain.ledger import SOURCES as ENTRY_SOURCES

SCHEDULES = {"manual": "Only when someone runs it", "daily": "Every day at a set time"}
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_FILE_NAME_CHARS = re.compile(r"^[A-Za-z0-9._\- ]+$")
MAX_FILE_NAME = 120


class ExportTemplate(ConfigModel):
    description = TextField(default="")
    kind = CharField(max_length=10, default="detail")  # detail, journal
    file_format = CharField(max_length=10, default="csv")  # csv, fixed, xlsx
    file_name_pattern = CharField(max_length=MAX_FILE_NAME, default="")
    definition = TextField(default="{}")  # JSON: selection, layout options, fields, header, trailer, journal
    schedule = CharField(max_length=10, default="manual")  # manual, daily
    schedule_time = CharField(max_length=5, default="")  # HH:MM, UK time
    version = IntegerField(default=1)
    # The UK date of the last scheduled run, so the worker runs a template once a day.
    last_scheduled_on = DateField(null=True)
    last_error = TextField(default="")
    created_at = DateTimeField(default=utcnow)
    changed_at = DateTimeField(default=utcnow)

    audit_type = "export_template"
    audit_fields = (
        "code",
        "name",
        "enabled",
        "description",
        "kind",
        "file_format",
        "file_name_pattern",
        "definition",
        "schedule",
        "schedule_time",
    )

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, self.kind)

    @property
    def format_name(self) -> str:
        return FORMATS.get(self.file_format, self.file_format)

    @property
    def schedule_text(self) -> str:
        return f"Daily at {self.schedule_time}" if self.schedule == "daily" else "Manual"

    def parsed(self) -> Definition:
        return parse_definition(self.kind, self.file_format, json.loads(self.definition or "{}"))


@dataclass(frozen=True)
class Definition:
    """A template's definition, checked."""

    layout: Layout
    funds: tuple[str, ...] = ()  # fund codes; empty: every fund
    methods: tuple[str, ...] = ()  # method codes; empty: every method
    sources: tuple[str, ...] = ()  # ledger entry sources; empty: every source
    # Journal postings: where the VAT and the contra (bank or cash control) go.
    contra_ledger_code: str = ""
    contra_cost_centre: str = ""
    vat_ledger_code: str = ""
    vat_cost_centre: str = ""
    description: str = ""  # journal line description; {date} is the posting date
    allow_empty: bool = False  # make a file (header and trailer only) when nothing is due
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        layout = self.layout
        return {
            "selection": {"funds": list(self.funds), "methods": list(self.methods), "sources": list(self.sources)},
            "csv": {
                "delimiter": layout.delimiter,
                "quote_all": layout.quote_all,
                "header_row": layout.header_row,
            },
            "line_ending": layout.line_ending,
            "encoding": layout.encoding,
            "allow_empty": self.allow_empty,
            "fields": [f.as_dict() for f in layout.fields],
            "header": [f.as_dict() for f in layout.header],
            "trailer": [f.as_dict() for f in layout.trailer],
            "journal": {
                "contra_ledger_code": self.contra_ledger_code,
                "contra_cost_centre": self.contra_cost_centre,
                "vat_ledger_code": self.vat_ledger_code,
                "vat_cost_centre": self.vat_cost_centre,
                "description": self.description,
            },
        }


def _codes(values, label: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise DomainError(f"The {label} must be a list of codes", "selection")
    return tuple(sorted({v.strip().upper() for v in values if v.strip()}))


def parse_definition(kind: str, file_format: str, data: dict) -> Definition:
    """Check a definition. Raises DomainError naming the form field that is wrong."""
    if kind not in KINDS:
        raise DomainError("Choose whether the file has a line per transaction or is a journal", "kind")
    if file_format not in FORMATS:
        raise DomainError("Choose the file format", "file_format")
    if not isinstance(data, dict):
        raise DomainError("The template's definition is not valid", "fields")
    selection = data.get("selection") or {}
    funds = _codes(selection.get("funds", []), "funds")
    methods = _codes(selection.get("methods", []), "methods")
    sources = tuple(sorted({str(s) for s in selection.get("sources", [])}))
    if any(s not in ENTRY_SOURCES for s in sources):
        raise DomainError("Choose where the transactions came from from the list", "sources")
    csv_options = data.get("csv") or {}
    delimiter = str(csv_options.get("delimiter", ","))
    if delimiter not in DELIMITERS:
        raise DomainError("Choose a delimiter from the list", "delimiter")
    line_ending = str(data.get("line_ending", "crlf"))
    if line_ending not in LINE_ENDINGS:
        raise DomainError("Choose the line ending", "line_ending")
    encoding = str(data.get("encoding", "utf-8"))
    if encoding not in ENCODINGS:
        raise DomainError("Choose the character set", "encoding")

    def specs(name: str) -> tuple[FieldSpec, ...]:
        items = data.get(name) or []
        if not isinstance(items, list) or len(items) > MAX_FIELDS:
            raise DomainError(f"A template can have up to {MAX_FIELDS} fields in each part", "fields")
        return tuple(FieldSpec.from_dict(item) for item in items if isinstance(item, dict) and item.get("source"))

    fields, header, trailer = specs("fields"), specs("header"), specs("trailer")
    if not fields:
        raise DomainError("Add at least one field to the lines of the file", "fields")
    line_kinds = line_sources(kind)
    for n, spec in enumerate(fields, 1):
        check_field(spec, line_kinds, file_format, f"Line field {n}", f"fields:{n - 1}")
    for part, items in (("Header", header), ("Trailer", trailer)):
        for n, spec in enumerate(items, 1):
            check_field(spec, record_sources(), file_format, f"{part} field {n}", f"{part.lower()}:{n - 1}")
    if file_format == "xlsx" and (header or trailer):
        raise DomainError(
            "An Excel workbook has a heading row but no header or trailer records: remove them, or choose CSV "
            "or fixed width",
            "fields",
        )
    journal = data.get("journal") or {}

    def code(name: str) -> str:
        value = str(journal.get(name, "")).strip()
        if len(value) > 30:
            raise DomainError("Ledger codes and cost centres must be 30 characters or fewer", name)
        return value

    definition = Definition(
        layout=Layout(
            kind=kind,
            file_format=file_format,
            fields=fields,
            header=header,
            trailer=trailer,
            delimiter=delimiter,
            quote_all=bool(csv_options.get("quote_all", False)),
            header_row=bool(csv_options.get("header_row", True)),
            line_ending=line_ending,
            encoding=encoding,
        ),
        funds=funds,
        methods=methods,
        sources=sources,
        contra_ledger_code=code("contra_ledger_code"),
        contra_cost_centre=code("contra_cost_centre"),
        vat_ledger_code=code("vat_ledger_code"),
        vat_cost_centre=code("vat_cost_centre"),
        description=str(journal.get("description", "")).strip()[:100],
        allow_empty=bool(data.get("allow_empty", False)),
    )
    if kind == "journal" and not definition.contra_ledger_code:
        raise DomainError(
            "Enter the ledger code of the bank or cash control account (the contra)", "contra_ledger_code"
        )
    if kind == "journal" and not definition.vat_ledger_code:
        raise DomainError("Enter the ledger code of the VAT output account", "vat_ledger_code")
    return definition


# --- file names -----------------------------------------------------------------------------------

_NAME_FIELDS = {"date", "until", "seq", "code"}


def render_file_name(pattern: str, *, run_date: dt.date, until: dt.date, sequence: int, code: str) -> str:
    """`CTAX_{date:%Y%m%d}_{seq:04d}.csv` → `CTAX_20260302_0001.csv`.

    Only {date}, {until}, {seq} and {code} are allowed, with a format after a colon; no attribute
    or index look-ups (str.format would otherwise reach into objects). The result is a plain file
    name: letters, digits, spaces, dots, hyphens and underscores only.
    """
    values = {"date": run_date, "until": until, "seq": sequence, "code": code}
    out = []
    try:
        for literal, name, spec, conversion in string.Formatter().parse(pattern):
            out.append(literal)
            if name is None:
                continue
            if name not in _NAME_FIELDS or conversion:
                raise DomainError(
                    "The file name can only use {date}, {until}, {seq} and {code}, like CTAX_{date:%Y%m%d}_{seq}.csv",
                    "file_name_pattern",
                )
            value = values[name]
            if spec and name in ("date", "until"):
                from app.domain.exports.formats import check_date_format

                check_date_format(spec)
            out.append(format(value, spec or ("%Y-%m-%d" if name in ("date", "until") else "")))
    except (ValueError, TypeError) as exc:
        raise DomainError(
            "Check the file name pattern: put each {…} round date, until, seq or code", "file_name_pattern"
        ) from exc
    except DomainError as exc:
        raise DomainError(exc.message, "file_name_pattern") from exc
    name = "".join(out).strip()
    if not name or len(name) > MAX_FILE_NAME or not _FILE_NAME_CHARS.match(name) or name.startswith("."):
        raise DomainError(
            "The file name can only have letters, numbers, spaces, dots, hyphens and underscores",
            "file_name_pattern",
        )
    return name


# --- saving ---------------------------------------------------------------------------------------


def check_template_values(values: dict) -> dict:
    """Check and normalise a template's values (from the form or a preset)."""
    values = dict(values)
    name = str(values.get("name", "")).strip()
    if not name:
        raise DomainError("Enter the name of the export template", "name")
    if len(name) > 120:
        raise DomainError("The name must be 120 characters or fewer", "name")
    values["name"] = name
    definition = parse_definition(values.get("kind", ""), values.get("file_format", ""), values.get("definition", {}))
    values["definition"] = json.dumps(definition.as_dict(), sort_keys=True)
    schedule = values.get("schedule", "manual")
    if schedule not in SCHEDULES:
        raise DomainError("Choose when the export runs", "schedule")
    time_text = str(values.get("schedule_time", "") or "").strip()
    if schedule == "daily":
        match = _TIME.match(time_text)
        if not match:
            raise DomainError("Enter the time to run each day as hours and minutes, like 06:30", "schedule_time")
        time_text = f"{int(match.group(1)):02d}:{match.group(2)}"
    else:
        time_text = ""
    values["schedule_time"] = time_text
    pattern = str(values.get("file_name_pattern", "")).strip()
    if not pattern:
        raise DomainError("Enter a file name pattern, like CTAX_{date:%Y%m%d}_{seq}.csv", "file_name_pattern")
    render_file_name(pattern, run_date=dt.date(2026, 1, 31), until=dt.date(2026, 1, 30), sequence=1, code="CODE")
    values["file_name_pattern"] = pattern
    values["description"] = str(values.get("description", "") or "").strip()
    return values


def create_template(actor, values: dict, *, ip_address: str = "") -> ExportTemplate:
    values = check_template_values(values)
    values["code"] = normalise_code(values.get("code", ""))
    if ExportTemplate.by_code(values["code"]) is not None:
        raise DomainError(f"An export template with code {values['code']} already exists", "code")
    with database.atomic():
        template = ExportTemplate.create(**values)
        audit.record(
            "export_template.create",
            actor=actor,
            object_type="export_template",
            object_id=template.id,
            summary=f"Added export template {template.code} {template.name}",
            after=template.as_audit(),
            ip_address=ip_address,
        )
    return template


def change_template(template: ExportTemplate, actor, values: dict, *, ip_address: str = "") -> ExportTemplate:
    """Change a template (never its code). A change to what is written makes a new version."""
    values = {k: v for k, v in check_template_values(values).items() if k != "code"}
    before = template.as_audit()
    for key, value in values.items():
        setattr(template, key, value)
    b, a = audit.changes(before, template.as_audit())
    if not a:
        return template
    with database.atomic():
        template.version += 1
        template.changed_at = utcnow()
        template.save()
        audit.record(
            "export_template.change",
            actor=actor,
            object_type="export_template",
            object_id=template.id,
            summary=f"Changed export template {template.code} (version {template.version})",
            before=b,
            after=a,
            ip_address=ip_address,
        )
    return template


def set_template_enabled(template: ExportTemplate, actor, enabled: bool, *, ip_address: str = "") -> None:
    if template.enabled == enabled:
        return
    with database.atomic():
        template.enabled = enabled
        template.save()
        audit.record(
            "export_template.enable" if enabled else "export_template.disable",
            actor=actor,
            object_type="export_template",
            object_id=template.id,
            summary=f"{'Enabled' if enabled else 'Disabled'} export template {template.code}",
            before={"enabled": not enabled},
            after={"enabled": enabled},
            ip_address=ip_address,
        )


# --- presets --------------------------------------------------------------------------------------


def _f(source: str, heading: str = "", value: str = "", **options) -> dict:
    return {"source": source, "heading": heading, "value": value} | options


# The LocalGov IMS 15 columns (spec/file-formats.md §3), in our compatible form: RFC 4180 quoting,
# a header row with the 15 names, ISO 8601 UTC times and amounts with 2 decimal places.
LOCALGOV_FIELDS = [
    _f("receipt_reference", "TransactionReference"),
    _f("group_reference", "InternalReference"),
    _f("source_reference", "PspReference"),
    _f("office_code", "OfficeCode"),
    _f("created_at", "EntryDate"),
    _f("taken_at", "TransactionDate"),
    _f("account_reference", "AccountReference"),
    _f("user_code", "UserCode"),
    _f("fund_code", "FundCode"),
    _f("method_code", "MopCode"),
    _f("amount", "Amount"),
    _f("vat_code", "VatCode"),
    _f("vat_rate", "VatRate"),
    _f("vat_amount", "VatAmount"),
    _f("narrative", "Narrative"),
]

PRESETS: list[dict] = [
    {
        "code": "CTAXDAILY",
        "name": "Council tax daily file",
        "description": "Council tax payments for the back office (revenues system), one file a day: a header, a line "
        "per payment and a trailer with the count and total.",
        "kind": "detail",
        "file_format": "csv",
        "file_name_pattern": "CTAX_{date:%Y%m%d}_{seq:04d}.csv",
        "schedule": "manual",
        "schedule_time": "",
        "definition": {
            "selection": {"funds": ["CTAX"], "methods": [], "sources": []},
            "csv": {"delimiter": ",", "quote_all": False, "header_row": False},
            "fields": [
                _f("literal", "Record type", "D"),
                _f("account_reference", "Account reference"),
                _f("amount", "Amount"),
                _f("business_date", "Payment date", "%d/%m/%Y"),
                _f("method_code", "Method"),
                _f("receipt_reference", "Receipt reference"),
            ],
            "header": [
                _f("literal", "Record type", "H"),
                _f("literal", "Source system", "IMS"),
                _f("run_date", "Created", "%d/%m/%Y"),
                _f("cut_off_date", "Posting date", "%d/%m/%Y"),
                _f("sequence", "Sequence"),
            ],
            "trailer": [
                _f("literal", "Record type", "T"),
                _f("line_count", "Record count"),
                _f("total", "Total amount"),
            ],
        },
    },
    {
        "code": "GLJOURNAL",
        "name": "General ledger journal",
        "description": "Income summarised by posting date, ledger code, cost centre and VAT code: income credited net, "
        "VAT to the VAT output account and the total debited to the bank control account.",
        "kind": "journal",
        "file_format": "csv",
        "file_name_pattern": "GL_{date:%Y%m%d}_{seq:04d}.csv",
        "schedule": "manual",
        "schedule_time": "",
        "definition": {
            "selection": {"funds": [], "methods": [], "sources": []},
            "csv": {"delimiter": ",", "quote_all": False, "header_row": True},
            "fields": [
                _f("posting_date", "PostingDate"),
                _f("ledger_code", "Account"),
                _f("cost_centre", "CostCentre"),
                _f("vat_code", "VatCode"),
                _f("debit", "Debit"),
                _f("credit", "Credit"),
                _f("description", "Description"),
            ],
            "journal": {
                "contra_ledger_code": "9000",
                "contra_cost_centre": "",
                "vat_ledger_code": "9500",
                "vat_cost_centre": "",
                "description": "Income {date}",
            },
        },
    },
    {
        "code": "LOCALGOV15",
        "name": "LocalGov IMS 15-column CSV",
        "description": "Every transaction in the LocalGov IMS 15-column layout, quoted properly, with a header row.",
        "kind": "detail",
        "file_format": "csv",
        "file_name_pattern": "IMS_{date:%Y%m%d}_{seq:04d}.csv",
        "schedule": "manual",
        "schedule_time": "",
        "definition": {
            "selection": {"funds": [], "methods": [], "sources": []},
            "csv": {"delimiter": ",", "quote_all": False, "header_row": True},
            "fields": LOCALGOV_FIELDS,
        },
    },
]


def ensure_presets(actor=None) -> list[ExportTemplate]:
    """Create any preset that does not exist yet (by code). Safe to call again: never changes one."""
    made = []
    for preset in PRESETS:
        if ExportTemplate.by_code(preset["code"]) is None:
            made.append(create_template(actor, preset))
    return made
