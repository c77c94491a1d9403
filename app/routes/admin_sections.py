"""How each kind of configuration appears in the settings pages.

A Section ties a model to its form, its list columns and its summary rows, so the
generic list / add / check / confirm / change / disable pages in admin.py serve them
all. Add a new kind of configuration by adding a Section here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from app.domain.configuration import ConfigModel
from app.domain.funds import Fund, FundGroup, set_group_funds
from app.domain.methods import MethodOfPayment
from app.domain.money import format_pence
from app.domain.offices import Office
from app.domain.vat import VatCode, add_rate, parse_percentage
from app.forms import settings as forms


def yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def money_or_none(value: int | None) -> str:
    return format_pence(value) if value is not None else "No maximum"


@dataclass
class Section:
    slug: str
    model: type[ConfigModel]
    singular: str
    plural: str
    description: str
    form: type
    add_form: type | None = None
    # (heading, function of item) for the list table; code, name and status are always shown
    columns: list[tuple[str, Callable]] = field(default_factory=list)
    # (label, function of item or of form values) for the view and check pages
    summary: list[tuple[str, Callable]] = field(default_factory=list)
    prepare_form: Callable | None = None  # fills dynamic choices
    after_save: Callable | None = None  # (item, form, actor, ip) extra work after create/change

    @property
    def plural_in_sentence(self) -> str:
        """ "Funds" -> "funds", but "VAT codes" keeps its capitals."""
        return self.plural if self.plural[:2].isupper() else self.plural[0].lower() + self.plural[1:]

    def values(self, form) -> dict:
        """Model field values from a validated form."""
        names = {f for f in self.model._meta.fields}
        return {k: v for k, v in form.data.items() if k in names and k != "id"}

    def form_class(self, adding: bool):
        return self.add_form if adding and self.add_form else self.form


def _prepare_fund_form(form):
    form.vat_code.choices = [("", "Choose a VAT code")] + [
        (str(v.id), f"{v.code} – {v.name}") for v in VatCode.enabled_items()
    ]


def _fund_values(form) -> dict:
    values = {k: v for k, v in form.data.items() if k in Fund._meta.fields and k != "id"}
    values["vat_code"] = int(form.vat_code.data) if form.vat_code.data else None
    return values


def _prepare_group_form(form):
    form.funds.choices = [(str(f.id), f"{f.name} ({f.code})") for f in Fund.select().order_by(Fund.name)]


def _group_after_save(item, form, actor, ip):
    set_group_funds(item, actor, [int(x) for x in form.funds.data or []], ip_address=ip)


def _vat_after_create(item, form, actor, ip):
    if hasattr(form, "rate"):
        add_rate(item, actor, parse_percentage(form.rate.data), form.effective_from.data, ip_address=ip)


def _vat_code_name(value) -> str:
    if value in (None, ""):
        return "None"
    vat = VatCode.get_or_none(VatCode.id == int(value)) if not isinstance(value, VatCode) else value
    return f"{vat.code} – {vat.name}" if vat else "None"


SECTIONS: dict[str, Section] = {}


def _register(section: Section) -> None:
    SECTIONS[section.slug] = section


_register(
    Section(
        slug="funds",
        model=Fund,
        singular="fund",
        plural="Funds",
        form=forms.FundForm,
        description="What people pay for: council tax, rents, parking fines and so on.",
        columns=[("Online", lambda f: yes_no(f.shown_to_citizens)), ("Ledger code", lambda f: f.ledger_code)],
        summary=[
            ("Description for citizens", lambda f: f["description"] or "None"),
            ("Citizens can pay online", lambda f: yes_no(f["shown_to_citizens"])),
            ("Minimum amount", lambda f: format_pence(f["minimum_pence"])),
            ("Maximum amount", lambda f: money_or_none(f["maximum_pence"])),
            ("VAT code", lambda f: _vat_code_name(f["vat_code"])),
            ("General ledger code", lambda f: f["ledger_code"] or "None"),
            ("Cost centre", lambda f: f["cost_centre"] or "None"),
            ("What the reference is called", lambda f: f["reference_label"]),
            ("Where to find the reference", lambda f: f["reference_hint"] or "None"),
            ("Account must exist", lambda f: yes_no(f["account_must_exist"])),
            ("Ask for the payer's address", lambda f: yes_no(f["address_required"])),
            ("GOV.UK Pay account", lambda f: f["pay_account"]),
            ("Suspense fund", lambda f: yes_no(f["is_suspense"])),
        ],
        prepare_form=_prepare_fund_form,
    )
)
SECTIONS["funds"].values = _fund_values  # type: ignore[method-assign]

_register(
    Section(
        slug="fund-groups",
        model=FundGroup,
        singular="fund group",
        plural="Fund groups",
        form=forms.FundGroupForm,
        description="Sets of funds. Staff see only the funds of their fund groups.",
        columns=[("Funds", lambda g: str(g.funds().count()))],
        summary=[("Funds", lambda g: ", ".join(g["fund_names"]) or "None")],
        prepare_form=_prepare_group_form,
        after_save=_group_after_save,
    )
)

_register(
    Section(
        slug="methods",
        model=MethodOfPayment,
        singular="method of payment",
        plural="Methods of payment",
        form=forms.MethodForm,
        description="How money reaches the council, with limits and whether it can be refunded.",
        columns=[("Channel", lambda m: m.channel_name)],
        summary=[
            ("Channel", lambda m: forms.CHANNELS.get(m["channel"], m["channel"])),
            ("Minimum amount", lambda m: format_pence(m["minimum_pence"])),
            ("Maximum amount", lambda m: money_or_none(m["maximum_pence"])),
            ("Can be refunded", lambda m: yes_no(m["refundable"])),
            ("Staff can take payments by this method", lambda m: yes_no(m["staff_can_use"])),
        ],
    )
)

_register(
    Section(
        slug="vat-codes",
        model=VatCode,
        singular="VAT code",
        plural="VAT codes",
        form=forms.VatCodeForm,
        add_form=forms.VatCodeAddForm,
        description="VAT codes and their rates. A new rate takes effect from its date; old entries keep their rate.",
        columns=[("Current rate", lambda v: v.current_rate_text())],
        summary=[],
        after_save=_vat_after_create,
    )
)

_register(
    Section(
        slug="offices",
        model=Office,
        singular="office",
        plural="Offices",
        form=forms.OfficeForm,
        description="Where staff take payments. Each payment records its office.",
        summary=[("Address", lambda o: o["address"] or "None")],
    )
)


@dataclass
class SettingsLink:
    """A settings page served by its own blueprint (not a Section), listed on the settings index."""

    title: str
    endpoint: str
    description: str


LINKS: list[SettingsLink] = [
    SettingsLink(
        "Import templates",
        "import_admin.templates",
        "The files the council imports (allpay, DWP, CSV layouts of your own) and their default fund and method.",
    ),
    SettingsLink(
        "Import rules",
        "import_admin.rules",
        "What to do with particular lines of an import: set the fund or method, change the reference, "
        "send to suspense or skip.",
    ),
    SettingsLink(
        "Export templates",
        "exports.templates",
        "Files for back-office systems and general ledger journals: which transactions, the layout, "
        "control totals, file names and when they run.",
    ),
]
