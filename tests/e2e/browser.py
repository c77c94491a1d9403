"""Browser-test helpers: a Journey through the app with axe run on every page it sees.

With JavaScript on, axe runs in the page itself. With it off, axe cannot run there, so the page's
HTML (scripts removed, so the DOM stays the no-JavaScript one) is loaded into a JavaScript-enabled
page at the same URL, with the same stylesheets, and axe runs on that.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE_SOURCE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
SCREENSHOTS = ROOT / "test-results" / "screenshots"
MODES = ["js", "nojs"]
# Users that only the lockout journey uses, one per mode, so locking them affects nothing else.
LOCKOUT_USERS = {mode: f"lockout-{mode}@demo.example.gov.uk" for mode in MODES}
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.IGNORECASE | re.DOTALL)


class AccessibilityFailure(AssertionError):
    pass


class Journey:
    """One browser tab on one journey, with JavaScript on or off; `check()` after every page."""

    def __init__(self, page, axe_page, name: str, mode: str, base_url: str):
        self.page = page
        self.axe_page = axe_page
        self.name = name
        self.mode = mode
        self.base_url = base_url
        self.js = mode == "js"
        self.count = 0
        self.checked: list[str] = []

    def visit(self, path: str, label: str | None = None):
        self.page.goto(self.base_url + path)
        return self.check(label)

    def check(self, label: str | None = None, *, screenshot: bool = True):
        """Wait for the page, run axe on it, save a screenshot (unless it repeats one already taken)."""
        page = self.page
        page.wait_for_load_state("load")
        self.count += 1
        path = page.url.removeprefix(self.base_url) or "/"
        label = label or (re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "start")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if screenshot:
            name = f"{self.name}-{self.mode}-{self.count:02d}-{label}.png"
            page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        results = self._axe()
        self.checked.append(path)
        violations = results["violations"]
        if violations:
            lines = [f"axe found {len(violations)} violation(s) on {path} ({self.name}, JavaScript {self.mode}):"]
            for violation in violations:
                lines.append(
                    f"  {violation['id']} [{violation['impact']}]: {violation['help']} ({violation['helpUrl']})"
                )
                for node in violation["nodes"][:10]:
                    lines.append(f"      {json.dumps(node['target'])}: {node.get('failureSummary', '').strip()}")
            message = "\n".join(lines)
            print(message)
            raise AccessibilityFailure(message)
        return page

    def _axe(self) -> dict:
        if self.js:
            return run_axe(self.page)
        # JavaScript is off in this page, so axe cannot run in it: load the same HTML, scripts removed
        # so the DOM stays the no-JavaScript one, into a JavaScript-enabled page at the same URL.
        url = self.page.url.split("#")[0]
        html = _SCRIPT.sub("", self.page.content())
        served = []

        def serve(route):
            served.append(route.request.url)
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html)

        def matches(candidate: str) -> bool:
            return candidate.split("#")[0] == url

        self.axe_page.route(matches, serve)
        try:
            self.axe_page.goto(url)
            self.axe_page.wait_for_load_state("load")
        finally:
            self.axe_page.unroute(matches, serve)
        assert served, f"the no-JavaScript HTML of {url} was not the page axe checked"
        return run_axe(self.axe_page)


_AXE_CACHE: dict[str, str] = {}


def run_axe(page) -> dict:
    if "source" not in _AXE_CACHE:
        _AXE_CACHE["source"] = AXE_SOURCE.read_text(encoding="utf-8")
    page.evaluate(_AXE_CACHE["source"])
    tags = json.dumps(AXE_TAGS)
    return page.evaluate(f"axe.run(document, {{runOnly: {{type: 'tag', values: {tags}}}}})")
