"""Methods of payment: how money reaches the council, with limits and behaviour flags."""

from __future__ import annotations

from peewee import BigIntegerField, BooleanField, CharField

from app.domain.configuration import ConfigModel

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
