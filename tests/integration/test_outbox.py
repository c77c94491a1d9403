"""E-mail: every message is stored in the outbox; with Notify configured it is delivered through Notify."""

from __future__ import annotations

import pytest

from app.domain.funds import FundGroup
from app.domain.outbox import OutboxMessage
from tests.pages import error_summary, h1, main_text, post_form, summary_list, table_rows

NEW_EMAIL = "sam.okoro@demo.example.gov.uk"


def add_user(admin, email: str = NEW_EMAIL) -> None:
    response = post_form(
        admin,
        "/admin/users/add",
        {"name": "Sam Okoro", "email": email, "roles": ["auditor"], "fund_groups": [str(FundGroup.by_code("ALL").id)]},
    )
    assert response.status_code == 302, error_summary(response.get_data())
    assert post_form(admin, "/admin/users/add/check").status_code == 200


def test_a_new_user_gets_an_e_mail_kept_in_the_outbox_in_demo_mode(signed_in):
    admin = signed_in("admin")
    add_user(admin)
    message = OutboxMessage.get(OutboxMessage.to_address == NEW_EMAIL)
    assert (message.status, message.purpose) == ("stored", "account_created")
    assert message.subject == "Your income management account"
    assert "Dear Sam Okoro" in message.body
    assert "http://localhost/sign-in" in message.body

    outbox = admin.get("/admin/outbox")
    assert outbox.status_code == 200
    assert h1(outbox.get_data()) == "E-mail outbox"
    rows = table_rows(outbox.get_data())
    assert rows[0][1:] == [NEW_EMAIL, "Your income management account", "Stored"]

    page = admin.get(f"/admin/outbox/{message.id}")
    assert h1(page.get_data()) == "Your income management account"
    assert summary_list(page.get_data())["To"] == NEW_EMAIL
    assert "Dear Sam Okoro," in main_text(page.get_data())
    assert admin.get("/admin/outbox/99999999").status_code == 404


class FakeNotify:
    """Stands in for notifications_python_client's NotificationsAPIClient."""

    instances: list[FakeNotify] = []

    def __init__(self, api_key: str):
        self.api_key = api_key
        self.sent: list[dict] = []
        FakeNotify.instances.append(self)

    def send_email_notification(self, **kwargs):
        self.sent.append(kwargs)
        return {"id": "notify-id-0001", "reference": kwargs.get("reference")}


@pytest.fixture
def notify(app, monkeypatch):
    import app.integrations.notify as notify_module
    import app.jobs as jobs

    key = "ims_test-00000000-0000-0000-0000-000000000000-00000000-0000-0000-0000-000000000000"
    template = "11111111-2222-3333-4444-555555555555"
    # The web process decides to deliver from app.config; the job (the worker) reads its own config.
    app.config["NOTIFY_API_KEY"] = key
    app.config["NOTIFY_EMAIL_TEMPLATE_ID"] = template
    monkeypatch.setattr(jobs._config, "NOTIFY_API_KEY", key)
    monkeypatch.setattr(jobs._config, "NOTIFY_EMAIL_TEMPLATE_ID", template)
    monkeypatch.setattr(notify_module, "NotificationsAPIClient", FakeNotify)
    FakeNotify.instances = []
    return {"key": key, "template": template}


def test_with_notify_configured_the_message_is_delivered_and_marked_sent(signed_in, notify, monkeypatch):
    import app.integrations.notify as notify_module

    calls = []
    real_deliver = notify_module.deliver

    def spy(message, **kwargs):
        calls.append((message.id, kwargs))
        return real_deliver(message, **kwargs)

    monkeypatch.setattr(notify_module, "deliver", spy)
    admin = signed_in("admin")
    add_user(admin)

    message = OutboxMessage.get(OutboxMessage.to_address == NEW_EMAIL)
    assert calls == [(message.id, {"api_key": notify["key"], "template_id": notify["template"]})]
    [client] = FakeNotify.instances
    assert client.api_key == notify["key"]
    assert client.sent == [
        {
            "email_address": NEW_EMAIL,
            "template_id": notify["template"],
            "personalisation": {"subject": message.subject, "body": message.body},
            "reference": f"outbox-{message.id}",
        }
    ]
    assert (message.status, message.provider_id, message.error) == ("sent", "notify-id-0001", "")
    assert message.sent_at is not None
    assert table_rows(admin.get("/admin/outbox").get_data())[0][-1] == "Sent"


def test_a_message_notify_refuses_is_marked_failed(signed_in, notify, monkeypatch):
    from notifications_python_client.errors import HTTPError

    class NotifyResponse:
        status_code = 400

        def json(self):
            return {"errors": [{"error": "BadRequestError"}], "message": "Can't send to this recipient"}

    class Refusing(FakeNotify):
        def send_email_notification(self, **kwargs):
            raise HTTPError(NotifyResponse())

    import app.integrations.notify as notify_module

    monkeypatch.setattr(notify_module, "NotificationsAPIClient", Refusing)
    add_user(signed_in("admin"))
    message = OutboxMessage.get(OutboxMessage.to_address == NEW_EMAIL)
    assert message.status == "failed"
    assert message.error == "Notify refused the message: 400 Can't send to this recipient"


def test_the_outbox_is_not_found_outside_demo_mode(app, signed_in):
    admin = signed_in("admin")
    message = OutboxMessage.create(to_address="x@example.gov.uk", subject="Hello", body="Hi")
    assert admin.get("/admin/outbox").status_code == 200
    app.config["DEMO_MODE"] = False
    assert admin.get("/admin/outbox").status_code == 404
    assert admin.get(f"/admin/outbox/{message.id}").status_code == 404
    assert "E-mail outbox" not in admin.get("/staff").get_data(as_text=True)


def test_only_administrators_read_the_outbox(signed_in):
    for who in ("finance", "senior", "auditor", "housing"):
        assert signed_in(who).get("/admin/outbox").status_code == 403, who
