"""Public pages, error pages, council branding (no GOV.UK crown or font), security headers, feedback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.domain.feedback import Feedback
from tests.pages import error_summary, h1, inline_errors, main_text, post_form, title

ROOT = Path(__file__).resolve().parents[2]
BUILT_CSS = ROOT / "app" / "static" / "build" / "css" / "application.css"


@pytest.mark.parametrize(
    ("url", "heading"),
    [
        ("/", "Pay Demo Borough Council"),
        ("/accessibility", "Accessibility statement for Pay Demo Borough Council"),
        ("/cookies", "Cookies"),
        ("/privacy", "Privacy notice"),
        ("/feedback", "Give feedback on Pay Demo Borough Council"),
        ("/sign-in", "Sign in"),
        ("/signed-out", "You have signed out"),
    ],
)
def test_public_pages_render_with_the_council_name(client, url, heading):
    response = client.get(url)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert h1(html) == heading
    assert title(html) == f"{heading} – Pay Demo Borough Council – Demo Borough Council"
    assert "Demo Borough Council" in html


def test_start_page_lists_the_funds_citizens_can_pay(client):
    text = main_text(client.get("/").get_data())
    for name in ("Council tax", "Business rates", "Housing rent", "Parking penalty charge notice"):
        assert name in text
    assert "Commercial waste collection" not in text  # not shown to citizens
    assert "Suspense" not in text


def test_healthz_reports_the_database_reachable(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.is_json
    assert response.get_json() == {"status": "ok", "database": "reachable"}


def test_council_logo_is_served(client):
    response = client.get("/council-logo")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert b"<svg" in response.get_data()
    assert "max-age" in response.headers["Cache-Control"]


def test_unknown_page_gets_the_404_page(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert h1(html) == "Page not found"
    assert "check it is correct" in html
    assert "Traceback" not in html


PAGES_TO_SCAN = ["/", "/accessibility", "/cookies", "/privacy", "/feedback", "/sign-in", "/no-such-page"]


def test_no_crown_gov_uk_header_or_gds_transport_font_in_pages(client, signed_in):
    staff = signed_in("admin")
    for scanner, url in [(client, u) for u in PAGES_TO_SCAN] + [(staff, "/staff"), (staff, "/admin/settings")]:
        html = scanner.get(url).get_data(as_text=True)
        for forbidden in ("govuk-header__logotype", "Crown copyright", "govuk-footer__crown", "GDS Transport"):
            assert forbidden not in html, f"{forbidden} on {url}"
        assert "govuk-header__link--homepage" not in html, f"GOV.UK header on {url}"
        assert "Demo Borough Council" in html


def test_built_css_has_no_gds_transport_and_no_font_face():
    assert BUILT_CSS.exists(), "Build the front-end first: npm run build"
    css = BUILT_CSS.read_text(encoding="utf-8")
    assert "GDS Transport" not in css
    assert "@font-face" not in css
    assert "arial" in css.lower()


@pytest.mark.parametrize("url", ["/", "/sign-in", "/no-such-page", "/healthz"])
def test_security_headers(client, url):
    response = client.get(url)
    csp = response.headers["Content-Security-Policy"]
    directives = {d.strip().split(" ")[0]: d.strip() for d in csp.split(";")}
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert re.search(r"script-src 'self' 'nonce-[A-Za-z0-9_-]{16,}'", directives["script-src"])
    assert re.search(r"style-src 'self' 'nonce-[A-Za-z0-9_-]{16,}'", directives["style-src"])
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["object-src"] == "object-src 'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_every_inline_script_and_style_carries_the_responses_nonce(client):
    response = client.get("/")
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    html = response.get_data(as_text=True)
    tags = re.findall(r"<(?:script|style)\b[^>]*>", html)
    assert tags
    for tag in tags:
        assert f'nonce="{nonce}"' in tag, tag
    # A new response gets a new nonce.
    again = client.get("/").headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" not in again


def test_staff_pages_are_not_cached(signed_in):
    response = signed_in("finance").get("/transactions")
    assert response.headers["Cache-Control"] == "no-store"


def test_feedback_without_a_rating_shows_the_error_summary_and_saves_nothing(client):
    before = Feedback.select().count()
    response = post_form(client, "/feedback", {"comments": "Lovely"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert title(html).startswith("Error: Give feedback on Pay Demo Borough Council")
    assert error_summary(html) == ["Select how satisfied you are with this service"]
    assert "Select how satisfied you are with this service" in inline_errors(html)
    assert 'class="govuk-error-summary"' in html
    assert "Lovely" in html  # what they typed is kept
    assert Feedback.select().count() == before


def test_feedback_with_a_bad_email_address_is_refused(client):
    response = post_form(client, "/feedback", {"rating": "satisfied", "email": "not-an-address"})
    assert error_summary(response.get_data()) == [
        "Enter an e-mail address in the correct format, like name@example.com"
    ]


def test_feedback_is_stored_and_administrators_can_read_it(client, signed_in):
    response = post_form(
        client,
        "/feedback",
        {
            "rating": "very_satisfied",
            "comments": "Clear and quick to test",
            "council_name": "Example District Council",
            "email": "tester@example.gov.uk",
            "page": "/cookies",
        },
        form_url="/feedback?page=/cookies",
    )
    assert response.status_code == 302
    assert response.location.endswith("/feedback/sent")
    assert h1(client.get(response.location).get_data()) == "Feedback sent"

    stored = Feedback.select().order_by(Feedback.id.desc()).first()
    assert (stored.rating, stored.comments, stored.page) == ("very_satisfied", "Clear and quick to test", "/cookies")
    assert (stored.council_name, stored.email) == ("Example District Council", "tester@example.gov.uk")

    text = main_text(signed_in("admin").get("/admin/feedback").get_data())
    assert "Very satisfied" in text
    assert "Clear and quick to test" in text
    assert "Example District Council" in text


def test_feedback_ignores_a_page_that_is_not_on_this_site(client):
    post_form(client, "/feedback", {"rating": "neither", "page": "//evil.example/x"})
    assert Feedback.select().order_by(Feedback.id.desc()).first().page == ""


def test_what_people_type_is_escaped(client, signed_in):
    post_form(client, "/feedback", {"rating": "satisfied", "comments": '<script>alert("x")</script><b>bold</b>'})
    admin = signed_in("admin")
    admin.markup_as_text_ok = True  # the escaped tags are shown as text on purpose
    html = admin.get("/admin/feedback").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold</b>" not in html
