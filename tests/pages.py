"""Reading pages in tests: the page check every HTML response must pass, and small scrapers.

`page_problems()` is what the test client (tests/conftest.py) runs on every HTML page it
gets back, so a template that breaks one of these rules fails whichever test renders it:
- the HTML parses without errors (html5lib, the HTML5 parsing algorithm browsers use);
- exactly one <h1>, and the <title> starts with its text (after an optional "Error: ");
- every id is unique;
- every form that posts carries a CSRF token;
- no escaped HTML tags are shown as text (markup concatenated in a template gets escaped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import html5lib
from html5lib.constants import E as PARSE_ERROR_MESSAGES

_SPACE = re.compile(r"\s+")
_ESCAPED_TAG = re.compile(r"</?(?:a|p|br|h[1-6]|strong|span|div|img|ul|ol|li|table|form|input|button)\b[^<>]*>")


def squash(text: str) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _decode(body: str | bytes) -> str:
    return body.decode("utf-8") if isinstance(body, bytes) else body


@dataclass
class Parsed:
    root: Element
    errors: list[str]


def parse(body: str | bytes, *, fragment: bool = False) -> Parsed:
    """Parse like a browser; collect every parse error instead of stopping at the first."""
    parser = html5lib.HTMLParser(tree=html5lib.getTreeBuilder("etree"), namespaceHTMLElements=False)
    html = _decode(body)
    root = parser.parseFragment(html) if fragment else parser.parse(html)
    if fragment:  # parseFragment returns a DocumentFragment wrapper element
        wrapper = Element("fragment")
        wrapper.extend(list(root))
        root = wrapper
    lines = html.splitlines()
    errors = []
    for (line, col), code, datavars in parser.errors:
        message = PARSE_ERROR_MESSAGES.get(code, code)
        try:
            message = message % (datavars or {})
        except (KeyError, TypeError, ValueError):
            pass
        source = lines[line - 1].strip()[:160] if 0 < line <= len(lines) else ""
        errors.append(f"line {line} column {col}: {message} [{code}] near: {source}")
    return Parsed(root, errors)


def text_of(element: Element | None) -> str:
    if element is None:
        return ""
    skip = {"script", "style", "template"}

    def walk(el: Element) -> list[str]:
        if el.tag in skip:
            return [el.tail or ""]
        parts = [el.text or ""]
        for child in el:
            parts.extend(walk(child))
        parts.append(el.tail or "")
        return parts

    parts = walk(element)
    parts[-1] = ""  # the element's own tail is not inside it
    return squash("".join(parts))


def page_problems(body: str | bytes, *, fragment: bool = False, markup_as_text_ok: bool = False) -> list[str]:
    """Everything wrong with a page (empty when it passes).

    markup_as_text_ok: for a test that shows user-typed "<tags>" on purpose (to prove escaping).
    """
    parsed = parse(body, fragment=fragment)
    problems = [f"HTML parse error: {e}" for e in parsed.errors]
    root = parsed.root

    ids: dict[str, int] = {}
    for el in root.iter():
        if isinstance(el.tag, str) and el.get("id") is not None:
            ids[el.get("id")] = ids.get(el.get("id"), 0) + 1
    problems += [f'id "{i}" is used {n} times' for i, n in sorted(ids.items()) if n > 1]

    for number, form in enumerate(root.iter("form"), start=1):
        if (form.get("method") or "get").lower() != "post":
            continue
        names = {el.get("name") for el in form.iter("input")}
        if "csrf_token" not in names:
            problems.append(f"form {number} (action={form.get('action')!r}) posts without a csrf_token input")

    # Markup built by concatenating strings in a template gets escaped and shows its tags as text.
    body_element = next(root.iter("body"), root)
    shown_tags = sorted(set(_ESCAPED_TAG.findall(text_of(body_element))))
    if shown_tags and not markup_as_text_ok:
        problems.append(f"escaped HTML is shown as text: {shown_tags}")

    if not fragment:
        h1s = list(root.iter("h1"))
        if len(h1s) != 1:
            problems.append(f"expected exactly one <h1>, found {len(h1s)}: {[text_of(h) for h in h1s]}")
        titles = list(root.iter("title"))
        title = text_of(titles[0]) if titles else ""
        if not title:
            problems.append("the page has no <title>")
        elif len(h1s) == 1:
            heading = text_of(h1s[0])
            if not heading:
                problems.append("the <h1> is empty")
            elif not (title.startswith(heading) or title.startswith("Error: " + heading)):
                problems.append(f"the <title> {title!r} does not start with the <h1> {heading!r}")
    return problems


# --- scraping ---------------------------------------------------------------------------------


def root_of(body: str | bytes) -> Element:
    return parse(body).root


def h1(body: str | bytes) -> str:
    return text_of(next(root_of(body).iter("h1"), None))


def title(body: str | bytes) -> str:
    return text_of(next(root_of(body).iter("title"), None))


def main_text(body: str | bytes) -> str:
    """The visible text of <main> (or the whole page), whitespace squashed."""
    root = root_of(body)
    return text_of(next(root.iter("main"), None) or root)


def csrf_token(body: str | bytes) -> str:
    for el in root_of(body).iter("input"):
        if el.get("name") == "csrf_token" and el.get("value"):
            return el.get("value")
    raise AssertionError("no csrf_token input on the page")


def error_summary(body: str | bytes) -> list[str]:
    """The messages in the GOV.UK error summary, in order (empty when there is none)."""
    for el in root_of(body).iter():
        if "govuk-error-summary__list" in (el.get("class") or "").split():
            return [text_of(li) for li in el.iter("li")]
    return []


def inline_errors(body: str | bytes) -> list[str]:
    """The inline error messages next to fields, without the hidden "Error:" prefix."""
    found = []
    for el in root_of(body).iter():
        if "govuk-error-message" in (el.get("class") or "").split():
            found.append(re.sub(r"^Error:\s*", "", text_of(el)))
    return found


def links(body: str | bytes) -> list[tuple[str, str]]:
    return [(text_of(a), a.get("href") or "") for a in root_of(body).iter("a")]


def link_href(body: str | bytes, text: str) -> str:
    """The href of the first link whose text starts with `text`."""
    for label, href in links(body):
        if label.startswith(text):
            return href
    raise AssertionError(f"no link starting {text!r} on the page")


def table_rows(body: str | bytes) -> list[list[str]]:
    """Cell texts of every body row of every table on the page."""
    rows = []
    for tbody in root_of(body).iter("tbody"):
        for tr in tbody.iter("tr"):
            rows.append([text_of(cell) for cell in tr if cell.tag in ("td", "th")])
    return rows


def summary_list(body: str | bytes) -> dict[str, str]:
    """Key → value of every GOV.UK summary list row on the page."""
    result = {}
    for row in root_of(body).iter():
        if "govuk-summary-list__row" not in (row.get("class") or "").split():
            continue
        key = value = None
        for cell in row:
            classes = (cell.get("class") or "").split()
            if "govuk-summary-list__key" in classes:
                key = text_of(cell)
            elif "govuk-summary-list__value" in classes:
                value = text_of(cell)
        if key is not None:
            result[key] = value or ""
    return result


def form_values(body: str | bytes, index: int = 0) -> dict[str, list[str]]:
    """What the browser would send for the `index`th form inside <main>, as it stands.

    Checked checkboxes and radios only, selected options, no buttons or file inputs. Use it to
    change one field of a "change" form and post the rest as they are.
    """
    root = root_of(body)
    main = next(root.iter("main"), root)
    forms = list(main.iter("form"))
    if not forms:
        raise AssertionError("no form inside <main>")
    values: dict[str, list[str]] = {}

    def add(name: str | None, value: str) -> None:
        if name:
            values.setdefault(name, []).append(value)

    for el in forms[index].iter():
        name = el.get("name")
        if el.tag == "input":
            kind = (el.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset", "file"):
                continue
            if kind in ("checkbox", "radio"):
                if el.get("checked") is not None:
                    add(name, el.get("value", "on"))
                continue
            add(name, el.get("value", ""))
        elif el.tag == "textarea":
            add(name, (el.text or "").removeprefix("\n"))
        elif el.tag == "select":
            options = list(el.iter("option"))
            chosen = [o for o in options if o.get("selected") is not None]
            if not chosen and options and el.get("multiple") is None:
                chosen = options[:1]
            for option in chosen:
                add(name, option.get("value", text_of(option)))
    return values


# --- driving the test client ------------------------------------------------------------------

DEMO_PASSWORD = "demo-password-2026"
DEMO_EMAILS = {
    "admin": "admin@demo.example.gov.uk",
    "system_administrator": "admin@demo.example.gov.uk",
    "finance": "finance@demo.example.gov.uk",
    "finance_officer": "finance@demo.example.gov.uk",
    "senior": "senior@demo.example.gov.uk",
    "senior_finance_officer": "senior@demo.example.gov.uk",
    "auditor": "auditor@demo.example.gov.uk",
    "housing": "housing@demo.example.gov.uk",
}


def sign_in(client, email: str, password: str = DEMO_PASSWORD, *, next_url: str | None = None):
    """Sign in through the real form, with the CSRF token the form carries. Returns the POST response."""
    url = "/sign-in" + (f"?next={next_url}" if next_url else "")
    token = csrf_token(client.get(url).get_data())
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


def post_form(client, url: str, data: dict | None = None, *, form_url: str | None = None, **kwargs):
    """GET the page with the form (form_url, default url) for its CSRF token, then POST data to url."""
    token = csrf_token(client.get(form_url or url).get_data())
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kwargs)
