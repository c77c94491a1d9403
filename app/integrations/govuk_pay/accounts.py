"""GOV.UK Pay accounts: one API key (and webhook signing secret) per account, from the environment.

A council often has several GOV.UK Pay services (accounts), e.g. one for parking so that
the money lands in a different bank account. Each fund names the account that takes its
card payments (`Fund.pay_account`); the keys themselves are secrets, so they come only
from environment variables, never from the database:

    GOVUK_PAY_API_KEY                 the account called "default"
    GOVUK_PAY_API_KEY_<NAME>          the account called "<name>" (lower case), e.g. _PARKING
    GOVUK_PAY_WEBHOOK_SECRET[_<NAME>] that account's webhook signing secret

The emulator reads the same variables, so one `.env` configures both sides.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from app.integrations.govuk_pay.client import DEFAULT_BASE_URL, GovukPayClient, verify_webhook_signature

KEY_PREFIX = "GOVUK_PAY_API_KEY"
SECRET_PREFIX = "GOVUK_PAY_WEBHOOK_SECRET"  # noqa: S105 (a variable name, not a secret)


@dataclass(frozen=True)
class PayAccount:
    name: str
    api_key: str
    webhook_secret: str = ""

    def __repr__(self) -> str:  # never print a key in a log or a traceback
        secret = "set" if self.webhook_secret else "unset"
        return f"PayAccount(name={self.name!r}, api_key='…', webhook_secret={secret})"


def _account_name(variable: str, prefix: str) -> str | None:
    if variable == prefix:
        return "default"
    if variable.startswith(prefix + "_"):
        return variable[len(prefix) + 1 :].lower() or None
    return None


def accounts_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, PayAccount]:
    environ = os.environ if environ is None else environ
    keys: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for variable, value in environ.items():
        if not value:
            continue
        name = _account_name(variable, KEY_PREFIX)
        if name:
            keys[name] = value.strip()
        name = _account_name(variable, SECRET_PREFIX)
        if name:
            secrets[name] = value.strip()
    return {name: PayAccount(name, key, secrets.get(name, "")) for name, key in sorted(keys.items())}


class PayGateway:
    """The configured accounts and one reusable client per account (clients pool connections)."""

    def __init__(
        self,
        accounts: Mapping[str, PayAccount],
        base_url: str = DEFAULT_BASE_URL,
        *,
        transport: httpx.BaseTransport | None = None,
        client_options: Mapping | None = None,
    ):
        self.accounts = dict(accounts)
        self.base_url = base_url
        self.transport = transport
        self.client_options = dict(client_options or {})
        self._clients: dict[str, GovukPayClient] = {}
        self._lock = threading.Lock()

    def has_account(self, name: str) -> bool:
        return name in self.accounts

    def client(self, name: str) -> GovukPayClient:
        account = self.accounts.get(name)
        if account is None:
            raise KeyError(f"No GOV.UK Pay API key is configured for the account {name!r} (set {KEY_PREFIX}_…)")
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = GovukPayClient(account.api_key, self.base_url, transport=self.transport, **self.client_options)
                self._clients[name] = client
            return client

    def account_for_signature(self, body: bytes, signature: str | None) -> PayAccount | None:
        """The account whose webhook secret signed `body`, or None when none did."""
        for account in self.accounts.values():
            if account.webhook_secret and verify_webhook_signature(body, signature, account.webhook_secret):
                return account
        return None

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
