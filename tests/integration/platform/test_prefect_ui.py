"""The Prefect UI a browser gets from the embedded server loads nothing from the internet.

Found by a screenshot run (issue 14): Prefect 3.9's default v2 UI starts an analytics SDK that
fetches its remote configuration from ``sr-client-cfg.amplitude.com`` on every page load, even
with ``PREFECT_SERVER_ANALYTICS_ENABLED=false``. The embedded server now serves the v1 UI by
default (``settings.QUIET_ENV``). This test asks a real Prefect server for its root page as a
browser does, follows every script, style and module import it serves, and reads them all.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration

#: Hosts of analytics SDKs a UI bundle could call home to.
ANALYTICS_HOSTS = ("amplitude.com", "segment.io", "google-analytics.com", "posthog.com")
#: Asset references in HTML attributes and in ES module imports (static and dynamic).
HTML_REF = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
JS_REF = re.compile(r"""["'`]((?:\.{1,2}/|/)?(?:assets/)?[\w.-]+\.(?:js|css))["'`]""")


def _crawl(base: str, client: httpx.Client) -> tuple[str, dict[str, str]]:
    """The URL the root page ends on and the text of every asset it reaches."""
    page = client.get(base + "/", headers={"accept": "text/html"}, follow_redirects=True)
    assert page.status_code == 200, page.text[:200]
    todo = [urljoin(str(page.url), ref) for ref in HTML_REF.findall(page.text)]
    seen: dict[str, str] = {str(page.url): page.text}
    while todo and len(seen) < 500:
        url = todo.pop()
        if url in seen:
            continue
        assert urlsplit(url).netloc == urlsplit(base).netloc, f"the page loads {url}"
        response = client.get(url)
        seen[url] = response.text if response.status_code == 200 else ""
        if url.endswith(".js"):
            todo += [urljoin(url, ref) for ref in JS_REF.findall(response.text)]
    return str(page.url), seen


def test_the_default_prefect_ui_calls_no_analytics_host(prefect_server: str) -> None:
    base = prefect_server.removesuffix("/api")
    with httpx.Client(timeout=30) as client:
        landed, assets = _crawl(base, client)
        ui_settings = client.get(base + "/ui-settings").json()
    assert ui_settings["default_ui"] == "v1"
    assert urlsplit(landed).path == "/", f"a browser was sent to {landed}"
    scripts = [url for url in assets if url.endswith(".js")]
    # the whole application, not only its entry point, was read
    assert len(scripts) > 20, scripts
    calls = {url: host for url, text in assets.items() for host in ANALYTICS_HOSTS if host in text}
    assert calls == {}
