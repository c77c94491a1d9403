"""Import templates: which format a file is in, its layout options, and default fund and method.

Four templates are built in, one per fixed format (allpay, DWP, LocalGov IMS CSV, account
holders): their layout is code (spec/file-formats.md), so only their default fund and method
can be changed. Administrators add "csv" templates for any other CSV layout: delimiter,
header rows, which column holds which field (by number or header name), date format, pounds
or pence, an optional sign column, encoding. Every change is audited.
"""

from __future__ import annotations

import json
import re
from typing import Any

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, IntegrityError, TextField, fn

from app.db import BaseModel, database, utcnow
from app.domain import audit
from app.domain.errors import DomainError
from app.domain.funds import Fund
from app.domain.imports.formats import (
    AMOUNT_UNITS,
    CSV_FIELDS,
    DATE_FORMATS,
    DELIMITERS,
    DWP_DEFAULT_COLUMNS,
    ENCODINGS,
    FIELD_NAME_PATTERN,
    KINDS,
    REQUIRED_CSV_FIELDS,
)
from app.domain.methods import MethodOfPayment

MAX_NAME_LENGTH = 120
MAX_DESCRIPTION_LENGTH = 1000
MAX_HEADER_ROWS = 20
MAX_COLUMN_NUMBER = 500
MAX_COLUMN_NAME_LENGTH = 100
MAX_EXTRA_COLUMNS = 20
MAX_NEGATIVE_VALUES = 10

# kind -> (name, description, options): created by ensure_builtin_templates and migration 0011.
BUILTIN_TEMPLATES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "allpay": (
        "allpay daily file",
        "The fixed-width file allpay sends each day for Post Office, PayPoint, Payzone, phone and web "
        "payments. The trailer's count and total must match the payment lines or the whole file is refused.",
        {"encoding": "cp1252"},
    ),
    "dwp": (
        "DWP council tax deductions",
        "The DWP schedule of deductions from benefit towards council tax arrears: an Excel workbook "
        "(or the same columns as CSV), amounts in pence, a minus sign in column M for a recovery.",
        {"columns": dict(DWP_DEFAULT_COLUMNS), "negative_values": "-", "narrative": "DWP"},
    ),
    "localgov_csv": (
        "LocalGov IMS transactions CSV",
        "The 15-column transaction file of LocalGov IMS, with a header row; each line names its fund and method.",
        {"encoding": "utf-8-sig"},
    ),
    "account_holders": (
        "Account holders",
        "A back-office extract of accounts (reference, name, address, balance, stop message) to check "
        "references against. Loads account holders, not payments.",
        {"encoding": "utf-8-sig"},
    ),
}
# Default method (and fund) the demo council gives the built-ins.
DEMO_DEFAULTS = {"allpay": ("", "ALLPAY"), "dwp": ("CTAX", "DWP")}


class ImportTemplate(BaseModel):
    name = CharField(max_length=MAX_NAME_LENGTH, unique=True)
    description = TextField(default="")
    kind = CharField(max_length=20)
    options = TextField(default="{}")  # JSON: the layout, see formats.py
    default_fund = ForeignKeyField(Fund, null=True, backref="+", on_delete="RESTRICT")
    default_method = ForeignKeyField(MethodOfPayment, null=True, backref="+", on_delete="RESTRICT")
    is_builtin = BooleanField(default=False)
    is_active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    @property
    def settings(self) -> dict[str, Any]:
        """The options as a dict ({} if the stored JSON is damaged)."""
        try:
            value = json.loads(self.options or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def kind_name(self) -> str:
        return KINDS.get(self.kind, self.kind)

    @property
    def is_payments(self) -> bool:
        return self.kind != "account_holders"

    def as_audit(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "options": self.settings,
            "default_fund": self.default_fund_id,
            "default_method": self.default_method_id,
            "is_active": self.is_active,
        }

    @classmethod
    def active(cls, *, payments_only: bool = False):
        query = cls.select().where(cls.is_active == True)  # noqa: E712
        if payments_only:
            query = query.where(cls.kind != "account_holders")
        return query.order_by(cls.is_builtin.desc(), cls.name)

    @classmethod
    def builtin(cls, kind: str) -> ImportTemplate | None:
        return cls.get_or_none((cls.is_builtin == True) & (cls.kind == kind))  # noqa: E712


def ensure_builtin_templates() -> list[ImportTemplate]:
    """Create any missing built-in template (idempotent). Returns the ones created."""
    created = []
    with database.atomic():
        for kind, (name, description, options) in BUILTIN_TEMPLATES.items():
            if ImportTemplate.builtin(kind) is not None:
                continue
            taken = ImportTemplate.get_or_none(fn.LOWER(ImportTemplate.name) == name.lower())
            template = ImportTemplate.create(
                name=name if taken is None else f"{name} (built in)",
                description=description,
                kind=kind,
                options=json.dumps(options, sort_keys=True),
                is_builtin=True,
            )
            audit.record(
                "import_template.create",
                actor=None,
                object_type="import_template",
                object_id=template.id,
                summary=f"Added the built-in import template {template.name}",
                after=template.as_audit(),
            )
            created.append(template)
    return created


def set_demo_template_defaults() -> None:
    """The demo council's default method (and fund) for the built-ins, where none is set."""
    for kind, (fund_code, method_code) in DEMO_DEFAULTS.items():
        template = ImportTemplate.builtin(kind)
        if template is None or template.default_method_id is not None:
            continue
        method = MethodOfPayment.by_code(method_code)
        fund = Fund.by_code(fund_code) if fund_code else None
        if method is not None:
            change_defaults(template, None, fund.id if fund else None, method.id)


# ---------------------------------------------------------------------------
# Checking what an administrator entered
# ---------------------------------------------------------------------------


def _fund_id(value) -> int | None:
    if value in (None, ""):
        return None
    fund = Fund.get_or_none(Fund.id == int(value)) if str(value).isdigit() else None
    if fund is None:
        raise DomainError("Choose a fund from the list", "default_fund")
    return fund.id


def _method_id(value) -> int | None:
    if value in (None, ""):
        return None
    method = MethodOfPayment.get_or_none(MethodOfPayment.id == int(value)) if str(value).isdigit() else None
    if method is None:
        raise DomainError("Choose a method of payment from the list", "default_method")
    return method.id


def clean_column(value: str, field: str, label: str, *, header_rows: int, required: bool) -> str:
    """A column: a number from 1, or the name in the header row. "" when not given and optional."""
    text = " ".join((value or "").split())
    if not text:
        if required:
            raise DomainError(f"Enter the column that holds the {label}: a number, like 3, or its heading", field)
        return ""
    if text.isascii() and text.isdigit():
        number = int(text)
        if not 1 <= number <= MAX_COLUMN_NUMBER:
            raise DomainError(f"The column for the {label} must be a number from 1 to {MAX_COLUMN_NUMBER}", field)
        return str(number)
    if not header_rows:
        raise DomainError(
            f"The column for the {label} must be a number, because files of this template have no header row",
            field,
        )
    if len(text) > MAX_COLUMN_NAME_LENGTH:
        raise DomainError(f"The heading for the {label} must be {MAX_COLUMN_NAME_LENGTH} characters or fewer", field)
    return text


def parse_extra_columns(text: str, *, header_rows: int) -> dict[str, str]:
    """ "channel = 5" lines → {"channel": "5"}: more fields for rules to test."""
    extra: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, column = line.partition("=")
        name = name.strip().lower()
        if not sep or not name or not column.strip():
            raise DomainError(
                f"Line {number} of other columns must be a field name, an equals sign and a column, like channel = 5",
                "extra_columns",
            )
        if not FIELD_NAME_PATTERN.match(name):
            raise DomainError(
                f"Line {number} of other columns: the field name must start with a letter and use only lower case "
                "letters, numbers and underscores (30 at most), like outlet_code",
                "extra_columns",
            )
        if name in CSV_FIELDS or name in extra:
            raise DomainError(f"Line {number} of other columns: the field {name} is already mapped", "extra_columns")
        extra[name] = clean_column(column, "extra_columns", f"field {name}", header_rows=header_rows, required=True)
    if len(extra) > MAX_EXTRA_COLUMNS:
        raise DomainError(f"Map {MAX_EXTRA_COLUMNS} other columns at most", "extra_columns")
    return extra


def format_extra_columns(columns: dict[str, str]) -> str:
    return "\n".join(f"{name} = {column}" for name, column in columns.items() if name not in CSV_FIELDS)


def clean_csv_template(values: dict[str, Any], *, current: ImportTemplate | None = None) -> dict[str, Any]:
    """Model values for a CSV template from what was entered, or DomainError naming the field."""
    name = " ".join((values.get("name") or "").split())
    if not name:
        raise DomainError("Enter a name for the template", "name")
    if len(name) > MAX_NAME_LENGTH:
        raise DomainError(f"The name must be {MAX_NAME_LENGTH} characters or fewer", "name")
    clash = ImportTemplate.select().where(fn.LOWER(ImportTemplate.name) == name.lower())
    if current is not None:
        clash = clash.where(ImportTemplate.id != current.id)
    if clash.exists():
        raise DomainError(f"There is already a template called {name}", "name")
    description = (values.get("description") or "").strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise DomainError(f"The description must be {MAX_DESCRIPTION_LENGTH} characters or fewer", "description")

    delimiter = values.get("delimiter") or ""
    if delimiter not in DELIMITERS:
        raise DomainError("Choose what separates the values", "delimiter")
    header_text = str(values.get("header_rows") if values.get("header_rows") is not None else "").strip()
    if not (header_text.isascii() and header_text.isdigit()) or int(header_text) > MAX_HEADER_ROWS:
        raise DomainError(
            f"The number of header rows must be a whole number from 0 to {MAX_HEADER_ROWS}", "header_rows"
        )
    header_rows = int(header_text)
    encoding = values.get("encoding") or ""
    if encoding not in ENCODINGS:
        raise DomainError("Choose how the file's text is saved (its encoding)", "encoding")
    date_format = values.get("date_format") or ""
    if date_format not in DATE_FORMATS:
        raise DomainError("Choose how dates are written", "date_format")
    amount_unit = values.get("amount_unit") or ""
    if amount_unit not in AMOUNT_UNITS:
        raise DomainError("Choose whether amounts are in pounds or pence", "amount_unit")

    columns: dict[str, str] = {}
    for field_name, label in CSV_FIELDS.items():
        label = label.split(" (")[0].lower()
        column = clean_column(
            values.get(f"column_{field_name}", ""),
            f"column_{field_name}",
            label,
            header_rows=header_rows,
            required=field_name in REQUIRED_CSV_FIELDS,
        )
        if column:
            columns[field_name] = column
    columns.update(parse_extra_columns(values.get("extra_columns", ""), header_rows=header_rows))

    negative_text = " ".join((values.get("negative_values") or "").split())
    negatives = [v.strip() for v in negative_text.split(",") if v.strip()]
    if "sign" in columns and not negatives:
        raise DomainError(
            "Enter the values in the sign column that mean a negative amount, like D or -", "negative_values"
        )
    if len(negatives) > MAX_NEGATIVE_VALUES or any(len(v) > 10 for v in negatives):
        raise DomainError(
            f"Enter at most {MAX_NEGATIVE_VALUES} negative signs of up to 10 characters each, separated by commas",
            "negative_values",
        )
    options = {
        "delimiter": delimiter,
        "header_rows": header_rows,
        "encoding": encoding,
        "date_format": date_format,
        "amount_unit": amount_unit,
        "columns": columns,
        "negative_values": ",".join(negatives) or "-",
        "allow_negative": bool(values.get("allow_negative")),
    }
    return {
        "name": name,
        "description": description,
        "kind": "csv",
        "options": json.dumps(options, sort_keys=True),
        "default_fund": _fund_id(values.get("default_fund")),
        "default_method": _method_id(values.get("default_method")),
    }


def form_values(template: ImportTemplate) -> dict[str, Any]:
    """What the CSV template form shows for a saved template."""
    options = template.settings
    columns = options.get("columns") or {}
    values = {
        "name": template.name,
        "description": template.description,
        "delimiter": options.get("delimiter", "comma"),
        "header_rows": str(options.get("header_rows", 1)),
        "encoding": options.get("encoding", "utf-8-sig"),
        "date_format": options.get("date_format", "dd/mm/yyyy"),
        "amount_unit": options.get("amount_unit", "pounds"),
        "negative_values": options.get("negative_values", "-"),
        "allow_negative": bool(options.get("allow_negative")),
        "extra_columns": format_extra_columns(columns),
        "default_fund": str(template.default_fund_id or ""),
        "default_method": str(template.default_method_id or ""),
    }
    for field_name in CSV_FIELDS:
        values[f"column_{field_name}"] = columns.get(field_name, "")
    return values


# ---------------------------------------------------------------------------
# Saving (audited)
# ---------------------------------------------------------------------------


def create_template(actor, values: dict[str, Any], *, ip_address: str = "") -> ImportTemplate:
    cleaned = clean_csv_template(values)
    try:
        with database.atomic():
            template = ImportTemplate.create(**cleaned)
            audit.record(
                "import_template.create",
                actor=actor,
                object_type="import_template",
                object_id=template.id,
                summary=f"Added the import template {template.name}",
                after=template.as_audit(),
                ip_address=ip_address,
            )
    except IntegrityError as exc:
        raise DomainError(f"There is already a template called {cleaned['name']}", "name") from exc
    return template


def _save(template: ImportTemplate, actor, changes: dict[str, Any], action: str, verb: str, ip_address: str):
    before = template.as_audit()
    for key, value in changes.items():
        setattr(template, key, value)
    b, a = audit.changes(before, template.as_audit())
    if not a:
        return template
    template.updated_at = utcnow()
    try:
        with database.atomic():
            template.save()
            audit.record(
                f"import_template.{action}",
                actor=actor,
                object_type="import_template",
                object_id=template.id,
                summary=f"{verb} the import template {template.name}",
                before=b,
                after=a,
                ip_address=ip_address,
            )
    except IntegrityError as exc:
        raise DomainError(f"There is already a template called {template.name}", "name") from exc
    return template


def change_template(template: ImportTemplate, actor, values: dict[str, Any], *, ip_address: str = ""):
    """Change a CSV template. Built-in templates only change their defaults (change_defaults)."""
    if template.is_builtin:
        raise DomainError("A built-in template's layout cannot be changed: only its default fund and method")
    cleaned = clean_csv_template(values, current=template)
    return _save(template, actor, cleaned, "change", "Changed", ip_address)


def change_defaults(template: ImportTemplate, actor, fund_id, method_id, *, ip_address: str = ""):
    changes = {"default_fund": _fund_id(fund_id), "default_method": _method_id(method_id)}
    return _save(template, actor, changes, "change", "Changed the defaults of", ip_address)


def set_template_active(template: ImportTemplate, actor, active: bool, *, ip_address: str = ""):
    verb = "Turned on" if active else "Turned off"
    return _save(template, actor, {"is_active": active}, "enable" if active else "disable", verb, ip_address)


def describe_column(column: str) -> str:
    return f"column {column}" if re.fullmatch(r"\d+", column or "") else f"the column headed “{column}”"
