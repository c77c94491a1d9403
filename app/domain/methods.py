"""Methods of payment: how money reaches the council, with limits and behaviour flags."""

from __future__ import annotations

from peewee import BigIntegerField, BooleanField, CharField

from app.domain.configuration import ConfigModel
from app.domain.errors import DomainError

# The channel decides how a method behaves; names are for people.
CHANNELS = {
    "online_card": "Online card payment",
    "telephone_card": "Telephone card payment",
    "counter_card": "Card payment at a counter",
    "cash": "Cash",
    "cheque": "Cheque",
    "postal_order": "Postal order",
    "bank_transfer": "Bank transfer",
    "allpay": "allpay, Post Office or PayPoint",
    "dwp": "DWP deduction",
    "direct_debit": "Direct Debit",
    "journal": "Journal or transfer (internal)",
}


class MethodOfPayment(ConfigModel):
    channel = CharField(max_length=30)
    minimum_pence = BigIntegerField(default=1)
    maximum_pence = BigIntegerField(null=True)
    refundable = BooleanField(default=False)
    staff_can_use = BooleanField(default=True)

    audit_type = "method"
    audit_fields = (
        "code",
        "name",
        "enabled",
        "channel",
        "minimum_pence",
        "maximum_pence",
        "refundable",
        "staff_can_use",
    )

    @property
    def channel_name(self) -> str:
        return CHANNELS.get(self.channel, self.channel)


def journal_method() -> MethodOfPayment:
    """The method of payment for money moved inside the council (channel "journal"): journals,
    transfers and suspense allocations move money already received, so no fund's takings by
    card, cash or bank count it again."""
    method = (
        MethodOfPayment.select()
        .where((MethodOfPayment.channel == "journal") & (MethodOfPayment.enabled == True))  # noqa: E712
        .order_by(MethodOfPayment.code)
        .first()
    )
    if method is None:
        raise DomainError(
            "There is no method of payment for journals and transfers. "
            "Ask an administrator to add one with the channel 'Journal or transfer (internal)'"
        )
    return method
