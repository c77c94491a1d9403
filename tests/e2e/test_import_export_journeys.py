"""Payment file imports and exports in a real browser, JavaScript on and off; axe checks every page.

An allpay file uploaded (after an empty submit), previewed, confirmed, watched until it is
imported, its problems downloaded, refused when uploaded again, and reversed by a senior finance
officer; import templates and rules set up and tried by an administrator; an export previewed,
run, downloaded and voided.

The server's database is shared by both modes and every browser test, and browser tests commit for
real, so each journey makes names and files of its own (the allpay file's amounts differ by mode, or
the second mode's file would be refused as a duplicate) and each mode runs a different export
template (a run takes every transaction not yet exported by that template).

The e2e server runs jobs the way the "testing" configuration does (HUEY_IMMEDIATE: a job runs
inside the request that queues it), so pressing "Confirm import" would post the batch before the
page comes back. The imports journey holds the job instead (`held_imports`) so the browser sees
the queued import and its progress; then it runs the job itself, as the worker would, and the page
shows the summary: by htmx polling with JavaScript, by the Refresh link without.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import random
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import SCREENSHOTS, Journey
from tests.e2e.test_back_office_journeys import banner, error_summary_links_to, go, named, no_sideways_scroll
from tests.e2e.test_journeys import follow, heading, sign_in, sign_out, submit

FINANCE = "finance@demo.example.gov.uk"
SENIOR = "senior@demo.example.gov.uk"
ADMIN = "admin@demo.example.gov.uk"
# Each mode runs its own export template: a run exports what that template has not exported yet.
EXPORT_TEMPLATE = {"js": ("CTAXDAILY", "Council tax daily file"), "nojs": ("LOCALGOV15", "LocalGov IMS 15-column CSV")}


# --- an allpay file ---------------------------------------------------------------------------


def allpay_line(sequence: int, reference: str, pence: int, channel: str, day: dt.date) -> str:
    amount = f"{pence // 100}.{pence % 100:02d}"
    return f"{sequence:>7}{reference:<16}{amount:>9}{channel}{day:%d/%m/%Y}"


def allpay_file(mode: str) -> tuple[bytes, int, int]:
    """Three good council tax payments and one unknown reference (suspense): (bytes, posted, suspense).

    The amounts differ by mode, so neither mode's file is a duplicate of the other's.
    """
    from app.domain.references.demo import generate_valid_reference

    rng = random.Random(f"e2e-allpay-{mode}")
    day = dt.date.today() - dt.timedelta(days=1)
    base = 1_111 if mode == "js" else 2_222
    good = [(generate_valid_reference("CTAX", rng), base + i * 7) for i in range(3)]
    lines = [allpay_line(700 + i, ref, pence, "P", day) for i, (ref, pence) in enumerate(good)]
    lines.append(allpay_line(799, "ZZ99", 750, "N", day))
    total = sum(p for _, p in good) + 750
    trailer = [
        f"Total Amount Updated onto System: {total // 100}.{total % 100:02d}",
        f"Total Transactions updated onto System: {len(lines)}",
    ]
    return ("\r\n".join([*lines, "", *trailer]) + "\r\n").encode("cp1252"), len(good), 1


@pytest.fixture
def held_imports(monkeypatch):
    """Confirmed imports are queued but not run: [(batch id, storage folder)] for the test to run."""
    from app.routes import imports as import_routes

    held: list[tuple[int, str]] = []
    monkeypatch.setattr(import_routes, "_enqueue", lambda batch_id: held.append((batch_id, import_routes._directory())))
    return held


def summary_value(journey: Journey, key: str):
    row = journey.page.locator(".govuk-summary-list__row", has=journey.page.locator("dt", has_text=key)).first
    return row.locator("dd")


def upload(journey: Journey, name: str, data: bytes, label: str) -> None:
    page = journey.page
    page.get_by_label("What kind of file is it?", exact=True).select_option(label="allpay daily file")
    page.get_by_label("Payment file", exact=True).set_input_files(
        files=[{"name": name, "mimeType": "text/plain", "buffer": data}]
    )
    submit(journey, "Upload and check the file", label)


def narrow_here(journey: Journey, label: str) -> None:
    """This page (a form's answer, which cannot be visited again) on a 375px screen: no sideways scroll."""
    page = journey.page
    page.set_viewport_size({"width": 375, "height": 800})
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{journey.name}-{journey.mode}-{label}.png"), full_page=True)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{page.url} is {width}px wide on a 375px screen"
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def download(journey: Journey, link) -> tuple[str, bytes]:
    """Follow a download link: the file's suggested name and its bytes."""
    with journey.page.expect_download() as info:
        link.click()
    item = info.value
    path = item.path()
    with open(path, "rb") as handle:
        return item.suggested_filename, handle.read()


# --- 1. imports -------------------------------------------------------------------------------


def test_import_journey(journey: Journey, held_imports):
    """Upload (an empty submit first), preview, confirm, progress, summary, problems CSV, history,
    the same file refused, then a senior finance officer reverses it (a reason is needed)."""
    from app.domain.imports import batches

    page = journey.page
    data, posted, suspense = allpay_file(journey.mode)
    name = f"allpay-e2e-{journey.mode}.txt"
    sign_in(journey, FINANCE)
    follow(journey, "Imports", "imports", within="header")
    expect(heading(journey)).to_have_text("Imports")
    follow(journey, "Import a file", "import-new")
    expect(heading(journey)).to_have_text("Import a payment file")

    submit(journey, "Upload and check the file", "import-new-error")
    error_summary_links_to(journey, "Select what kind of file it is", "template")
    expect(page.locator(".govuk-error-summary")).to_contain_text("Select the payment file")
    expect(page.locator("#file-error")).to_contain_text("Select the payment file")

    upload(journey, name, data, "import-preview")
    expect(heading(journey)).to_have_text(re.compile(rf"^Import \d+: {re.escape(name)}$"))
    batch_id = int(heading(journey).inner_text().split(":")[0].removeprefix("Import "))
    expect(page.locator("main")).to_contain_text("Nothing has been posted yet")
    expect(summary_value(journey, "Status")).to_have_text("Not imported yet")
    expect(summary_value(journey, "Lines in the file")).to_contain_text(f"{posted + suspense}, totalling")
    expect(summary_value(journey, "To post")).to_contain_text(f"{posted} lines")
    expect(summary_value(journey, "To go to suspense")).to_contain_text(f"{suspense} line")
    reasons = page.locator("table", has=page.locator("caption", has_text="Why lines will go to suspense"))
    expect(reasons).to_contain_text("ZZ99")
    problems = page.locator("table", has=page.locator("caption", has_text="Lines that will not simply be posted"))
    expect(problems.locator("tbody tr")).to_have_count(suspense)
    expect(problems).to_contain_text("Put into suspense")

    assert held_imports == []
    submit(journey, "Confirm import", "import-queued")
    assert [held[0] for held in held_imports] == [batch_id]
    expect(summary_value(journey, "Status")).to_have_text("Waiting to start")
    expect(summary_value(journey, "To post")).to_contain_text(f"{posted} lines")  # not posted yet
    progress = page.locator("#import-progress")
    expect(progress).to_contain_text(f"0 of {posted + suspense} lines read (0%)")
    refresh = progress.get_by_role("link", name=named("Refresh", f"the progress of import {batch_id}"))
    expect(refresh).to_be_visible()

    # The worker's part: post the batch. With JavaScript the page polls and reloads by itself.
    assert batches.run_batch(batch_id, directory=held_imports[0][1]).status == "completed"
    if journey.js:
        expect(summary_value(journey, "Status")).to_have_text("Imported", timeout=10_000)
        journey.check("import-done")
    else:
        expect(summary_value(journey, "Status")).to_have_text("Waiting to start")  # nothing changes by itself
        refresh.click()
        journey.check("import-done")
    expect(summary_value(journey, "Status")).to_have_text("Imported")
    expect(page.locator("#import-progress")).to_have_count(0)
    expect(summary_value(journey, "Posted")).to_contain_text(f"{posted} lines")
    expect(summary_value(journey, "Put into suspense")).to_contain_text(f"{suspense} line")
    expect(summary_value(journey, "Confirmed")).to_contain_text("Ben Carter")
    expect(page.locator("caption", has_text="Lines that were not simply posted")).to_be_visible()

    file_name, body = download(journey, page.get_by_role("link", name="Download every line with a problem (CSV)"))
    assert re.fullmatch(rf"import-{batch_id}-problems-\d{{4}}-\d\d-\d\d-\d{{4}}\.csv", file_name), file_name
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["Line", "Outcome", "Problem", "Line in the file"], rows
    assert len(rows) == 1 + suspense and rows[1][1] == "Put into suspense" and "ZZ99" in rows[1][3], rows

    follow(journey, "Back to imports", "import-history")
    history = page.locator("#results tbody tr", has=page.get_by_role("link", name=f"Import {batch_id}", exact=True))
    expect(history).to_contain_text(name)
    expect(history).to_contain_text("Imported")
    no_sideways_scroll(journey, "/imports", "import-history-narrow")

    # The same file again: checked, but it cannot be confirmed.
    follow(journey, "Import a file", "import-again")
    upload(journey, f"copy-of-{name}", data, "import-duplicate")
    expect(page.locator(".govuk-warning-text")).to_contain_text(
        f"This file has already been imported (import {batch_id}, {name}, uploaded on"
    )
    expect(page.get_by_role("button", name="Confirm import")).to_have_count(0)
    sign_out(journey)

    sign_in(journey, SENIOR)
    journey.visit(f"/imports/{batch_id}", "import-to-reverse")
    go(journey, "Reverse this import", f"({name})", "import-reverse")
    expect(heading(journey)).to_have_text(f"Reverse import {batch_id}")
    submit(journey, "Reverse the import", "import-reverse-error")
    error_summary_links_to(journey, "Enter why you are reversing this import", "reason")
    page.get_by_label("Why are you reversing this import?", exact=True).fill("allpay sent this file in error")
    submit(journey, "Reverse the import", "import-reversed")
    expect(banner(journey)).to_contain_text(f"Import {batch_id} reversed: {posted + suspense} reversal entries posted")
    expect(summary_value(journey, "Status")).to_have_text("Reversed")
    expect(page.locator(".govuk-warning-text")).to_contain_text("This import was reversed on")
    expect(summary_value(journey, "Reversal")).to_contain_text("allpay sent this file in error")
    expect(page.get_by_role("link", name=named("Reverse this import", f"({name})"))).to_have_count(0)
    no_sideways_scroll(journey, f"/imports/{batch_id}", "import-narrow")
    sign_out(journey)


# --- 2. import templates and rules ----------------------------------------------------------------


def test_import_admin_journey(journey: Journey):
    """An administrator adds a CSV template (after an error) and tries it; adds a rule (after an
    error), tries it on sample lines, saves it and moves it up and down."""
    page = journey.page
    template_name = f"E2E bank statement {journey.mode}"
    rule_name = f"XX references to suspense {journey.mode}"
    sample = "Reference,Amount,Date\r\nXX123456,12.50,02/03/2026\r\n594580735,20.00,02/03/2026"
    sign_in(journey, ADMIN)
    follow(journey, "Settings", "settings", within="header")
    follow(journey, "Import templates", "import-templates")
    expect(heading(journey)).to_have_text("Import templates")
    expect(page.locator("main table")).to_contain_text("allpay daily file")

    follow(journey, "Add a CSV template", "template-add")
    expect(heading(journey)).to_have_text("Add a CSV template")
    page.get_by_label("Column for the account reference", exact=True).fill("Reference")
    page.get_by_label("Column for the amount", exact=True).fill("Amount")
    page.get_by_label("Column for the date paid", exact=True).fill("Date")
    page.get_by_label("Default method of payment", exact=True).select_option(label="Bank transfer (BACS)")
    submit(journey, "Save template", "template-add-error")
    error_summary_links_to(journey, "Enter a name for the template", "name")
    page.get_by_label("Name", exact=True).fill(template_name)
    submit(journey, "Save template", "template-added")
    expect(heading(journey)).to_have_text(f"Import template {template_name}")
    expect(banner(journey)).to_contain_text(f"Import template {template_name} added")
    expect(summary_value(journey, "Type of file")).to_have_text("CSV file in a layout you describe")

    follow(journey, "Try this template", "template-try")
    expect(heading(journey)).to_have_text(f"Try the template {template_name}")
    page.get_by_label("Sample lines", exact=True).fill(sample)
    submit(journey, "Read these lines", "template-tried")
    read = page.locator("table", has=page.locator("caption", has_text="2 lines read"))
    expect(read.locator("tbody tr")).to_have_count(2)
    expect(read.locator("tbody tr").first).to_contain_text("XX123456")
    expect(read.locator("tbody tr").first).to_contain_text("£12.50")
    narrow_here(journey, "template-tried-narrow")

    follow(journey, "Back to the template", "template-view")
    follow(journey, "Import rules", "import-rules")
    expect(heading(journey)).to_have_text("Import rules")
    follow(journey, "Add a rule", "rule-add")
    expect(heading(journey)).to_have_text("Add an import rule")
    page.get_by_label("Which files it applies to", exact=True).select_option(label=template_name)
    page.get_by_label("Field for condition 1", exact=True).fill("reference")
    page.get_by_label("Test for condition 1", exact=True).select_option(label="starts with")
    page.get_by_label("Value for condition 1", exact=True).fill("XX")
    page.get_by_label("Send to suspense", exact=True).check()
    page.get_by_label("Value for the action", exact=True).fill("Old XX references")
    submit(journey, "Save rule", "rule-add-error")
    error_summary_links_to(journey, "Enter a name for the rule", "name")
    page.get_by_label("Name of the rule", exact=True).fill(rule_name)
    page.get_by_label("Template to read the sample with", exact=True).select_option(label=template_name)
    page.get_by_label("Sample lines (optional)", exact=True).fill(sample)
    submit(journey, "Try this rule", "rule-tried")
    expect(page.get_by_role("heading", name="What the rules would do")).to_be_visible()
    tried = page.locator("table", has=page.locator("caption", has_text="2 lines tried")).locator("tbody tr")
    expect(tried).to_have_count(2)
    expect(tried.nth(0).locator("td").nth(2)).to_have_text("Yes")
    expect(tried.nth(0).locator("td").nth(3)).to_contain_text("Suspense")
    expect(tried.nth(1).locator("td").nth(2)).to_have_text("No")
    expect(tried.nth(1).locator("td").nth(3)).to_contain_text("Post")
    expect(tried.nth(1).locator("td").nth(3)).to_contain_text("To Council tax, 594580735")
    narrow_here(journey, "rule-tried-narrow")

    submit(journey, "Save rule", "rule-saved")
    expect(heading(journey)).to_have_text("Import rules")
    expect(banner(journey)).to_contain_text(f"Import rule {rule_name} added")
    titles = page.locator(".govuk-summary-card__title")
    order = _rule_order(journey)
    assert order[-1] == rule_name, order
    card = page.locator(".govuk-summary-card", has=page.locator("h2", has_text=rule_name))
    expect(card).to_contain_text("Send to suspense")

    if len(order) > 1:
        page.get_by_role("button", name=named("Move up", rule_name)).click()
        journey.check("rule-moved-up")
        expect(banner(journey)).to_contain_text(f"Import rule {rule_name} moved up")
        assert _rule_order(journey) == [*order[:-2], rule_name, order[-2]], _rule_order(journey)
        page.get_by_role("button", name=named("Move down", rule_name)).click()
        journey.check("rule-moved-down")
        expect(banner(journey)).to_contain_text(f"Import rule {rule_name} moved down")
        assert _rule_order(journey) == order
    expect(titles.last).to_contain_text(rule_name)
    no_sideways_scroll(journey, "/admin/settings/imports/rules", "rules-narrow")
    sign_out(journey)


def _rule_order(journey: Journey) -> list[str]:
    """The rules' names, in order, from the cards' titles ("3. Name", maybe with an "Off" tag)."""
    titles = journey.page.locator(".govuk-summary-card__title").all_inner_texts()
    return [re.sub(r"^\d+\.\s*", "", title).removesuffix("Off").strip() for title in titles]


# --- 3. exports -------------------------------------------------------------------------------


def test_export_journey(journey: Journey):
    """The administrator reads the export templates; a senior finance officer previews and runs one,
    downloads the file, and voids the batch (a reason is needed)."""
    page = journey.page
    code, template_name = EXPORT_TEMPLATE[journey.mode]
    sign_in(journey, ADMIN)
    journey.visit("/admin/export-templates", "export-templates")
    expect(heading(journey)).to_have_text("Export templates")
    go(journey, code, template_name, "export-template")
    expect(heading(journey)).to_have_text(f"{template_name} ({code})")
    expect(summary_value(journey, "Status")).to_have_text("Enabled")
    no_sideways_scroll(journey, page.url.removeprefix(journey.base_url), "export-template-narrow")
    no_sideways_scroll(journey, "/admin/export-templates", "export-templates-narrow")
    sign_out(journey)

    sign_in(journey, SENIOR)
    follow(journey, "Exports", "exports", within="header")
    expect(heading(journey)).to_have_text("Exports")
    go(journey, f"Preview and run {template_name}", f"({code})", "export-preview")
    expect(heading(journey)).to_have_text(f"Preview and run {template_name}")
    what = page.locator(".govuk-summary-list")
    count_text = what.locator(".govuk-summary-list__row").first.locator("dd").inner_text()
    count = int(count_text.replace(",", ""))
    assert count > 0, "nothing to export: the demo ledger should have transactions up to yesterday"
    file_name = summary_value(journey, "File name").inner_text().strip()
    total = summary_value(journey, "Total").inner_text().strip()
    expect(page.locator(".app-export-preview")).to_be_visible()
    narrow_here(journey, "export-preview-narrow")

    submit(journey, "Run the export", "export-batch")
    expect(heading(journey)).to_have_text(f"Export batch {file_name}")
    expect(banner(journey)).to_contain_text(f"Exported {count:,} transactions ({total}) to {file_name}")
    expect(summary_value(journey, "Status")).to_have_text("Exported")
    sha256 = summary_value(journey, "SHA-256").inner_text().strip()
    size = int(summary_value(journey, "File size").inner_text().split()[0].replace(",", ""))

    downloaded, body = download(journey, page.get_by_role("link", name=f"Download {file_name}", exact=True))
    assert downloaded == file_name
    assert len(body) == size and hashlib.sha256(body).hexdigest() == sha256
    assert body.strip(), "the export file is empty"

    follow(journey, "Void this batch", "export-void")
    expect(heading(journey)).to_have_text(f"Void export batch {file_name}")
    submit(journey, "Void the batch", "export-void-error")
    error_summary_links_to(journey, "Enter why the batch is being voided", "reason")
    page.get_by_label("Why are you voiding this batch?", exact=True).fill("The back office rejected the file")
    submit(journey, "Void the batch", "export-voided")
    expect(heading(journey)).to_have_text(f"Export batch {file_name}")
    expect(banner(journey)).to_contain_text(f"Batch {file_name} voided")
    expect(summary_value(journey, "Status")).to_have_text("Void")
    expect(summary_value(journey, "Reason")).to_have_text("The back office rejected the file")
    expect(page.get_by_role("link", name="Void this batch")).to_have_count(0)
    no_sideways_scroll(journey, page.url.removeprefix(journey.base_url), "export-batch-narrow")

    follow(journey, "Back to exports", "exports-history")
    row = page.locator("#results tbody tr", has=page.get_by_role("link", name=file_name, exact=True))
    expect(row).to_contain_text("Void")
    no_sideways_scroll(journey, "/exports", "exports-history-narrow")
    sign_out(journey)
