"""Funds (what is being paid for) and fund groups (which staff see which funds)."""

from __future__ import annotations

from peewee import BigIntegerField, BooleanField, CharField, ForeignKeyField, TextField

from app.db import BaseModel, database
from app.domain import audit
from app.domain.configuration import ConfigModel
from app.domain.vat import VatCode


class Fund(ConfigModel):
    description = TextField(default="")  # shown to citizens under the fund name
    shown_to_citizens = BooleanField(default=False)
    minimum_pence = BigIntegerField(default=1)
    maximum_pence = BigIntegerField(null=True)
    vat_code = ForeignKeyField(VatCode, null=True, backref="funds", on_delete="RESTRICT")
    ledger_code = CharField(max_length=30, default="")
    cost_centre = CharField(max_length=30, default="")
    reference_label = CharField(max_length=80, default="Reference")  # e.g. "Council tax account number"
    reference_hint = TextField(default="")
    account_must_exist = BooleanField(default=False)
    address_required = BooleanField(default=False)
    pay_account = CharField(max_length=40, default="default")  # name of the GOV.UK Pay API key
    is_suspense = BooleanField(default=False)

    audit_type = "fund"
    audit_fields = (
        "code",
        "name",
        "enabled",
        "description",
        "shown_to_citizens",
        "minimum_pence",
        "maximum_pence",
        "vat_code",
        "ledger_code",
        "cost_centre",
        "reference_label",
        "reference_hint",
        "account_must_exist",
        "address_required",
        "pay_account",
        "is_suspense",
    )


class FundGroup(ConfigModel):
    audit_type = "fund_group"

    def funds(self):
        return Fund.select().join(FundGroupFund).where(FundGroupFund.fund_group == self).order_by(Fund.name)


class FundGroupFund(BaseModel):
    fund_group = ForeignKeyField(FundGroup, backref="memberships", on_delete="CASCADE")
    fund = ForeignKeyField(Fund, backref="group_memberships", on_delete="RESTRICT")

    class Meta:
        indexes = ((("fund_group", "fund"), True),)


def set_group_funds(group: FundGroup, actor, fund_ids: list[int], *, ip_address: str = "") -> None:
    before = sorted(f.code for f in group.funds())
    with database.atomic():
        FundGroupFund.delete().where(FundGroupFund.fund_group == group).execute()
        for fund_id in sorted(set(fund_ids)):
            FundGroupFund.create(fund_group=group, fund=fund_id)
        after = sorted(f.code for f in group.funds())
        if before != after:
            audit.record(
                "fund_group.set_funds",
                actor=actor,
                object_type="fund_group",
                object_id=group.id,
                summary=f"Changed the funds in {group.name}",
                before={"funds": before},
                after={"funds": after},
                ip_address=ip_address,
            )


def visible_fund_ids(user) -> set[int]:
    """Funds a user may see: the funds of their enabled fund groups."""
    from app.domain.users import UserFundGroup

    query = (
        FundGroupFund.select(FundGroupFund.fund)
        .join(FundGroup)
        .switch(FundGroupFund)
        .join(UserFundGroup, on=(UserFundGroup.fund_group == FundGroupFund.fund_group))
        .where((UserFundGroup.user == user) & (FundGroup.enabled == True))  # noqa: E712
    )
    return {row.fund_id for row in query}


def visible_funds(user):
    ids = visible_fund_ids(user)
    return Fund.select().where(Fund.id.in_(list(ids)) if ids else Fund.id.is_null()).order_by(Fund.name)
