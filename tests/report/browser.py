"""Open a report page in headless Chromium and say what a reader's browser would see.

``check_in_browser(index_html)`` loads a copy of the page (with a ``<base>`` pointing
at the page's own folder, so relative references resolve exactly as they do for
the original) plus one injected script that, after the load event, lists every
``<img>`` that did not decode (``complete`` and ``naturalWidth > 0``) and every
resource the page fetched (Resource Timing). Chromium also writes a NetLog of
every URL request it made; a request started on behalf of the page (its
``initiator`` is an origin -- the browser's own update/time/spell-check fetches
say "not an origin") to an ``http(s)``/``ws(s)`` URL is a network request of the
page. Name resolution is mapped to nothing, so even a slip cannot reach out.

Used by ``test_report.py`` (on a fixture report) and from the command line on a
real one::

    python tests/report/browser.py reports/index.html --screenshot /tmp/page.png
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--host-resolver-rules=MAP * ~NOTFOUND")
NETWORK_SCHEMES = ("http:", "https:", "ws:", "wss:", "ftp:")

PROBE = """
<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0))
                     .map(i => (i.getAttribute("src") || "").slice(0, 80));
  const fetched = performance.getEntriesByType("resource").map(e => e.name);
  const out = document.createElement("pre");
  out.id = "vaebench-browser-check";
  out.textContent = JSON.stringify({images: imgs.length, broken: broken,
                                    fetched: fetched,
                                    height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>
"""


@dataclass
class BrowserView:
    images: int                  # <img> elements on the page
    broken: list[str]            # their src (first 80 chars) where the image did not decode
    fetched: list[str]           # every resource the page loaded (Resource Timing)
    network: list[str]           # http(s)/ws(s) URLs requested for the page (NetLog)
    height: int                  # rendered page height in CSS pixels at the window width


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def unusable(timeout: float = 60) -> str | None:
    """Why no headless Chromium can be used here (None: one can). It must be installed
    and must render a trivial page to a DOM dump."""
    if find_chromium() is None:
        return f"no Chromium installed (looked for {', '.join(CHROMIUM_NAMES)})"
    try:
        proc = _chromium(["--dump-dom", "data:text/html,<p id=ok>ok</p>"], timeout)
    except (OSError, subprocess.SubprocessError) as err:
        return f"Chromium does not start: {err}"
    if 'id="ok"' not in proc.stdout:
        return f"Chromium renders nothing (exit {proc.returncode}): {proc.stderr[-300:]}"
    return None


def page_requests(netlog: Path) -> list[str]:
    """URLs of the requests in a Chromium NetLog that the page initiated."""
    log = json.loads(netlog.read_text(errors="replace"))
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return sorted({e["params"]["url"] for e in log["events"]
                   if e.get("type") == start and "url" in e.get("params", {})
                   and e["params"].get("initiator") != "not an origin"})


def _chromium(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)})")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def check_in_browser(index_html: str | Path, width: int = 1280,
                     timeout: float = 120) -> BrowserView:
    index_html = Path(index_html).resolve()
    html = index_html.read_text(encoding="utf-8")
    base = f'<base href="{index_html.parent.as_uri()}/">'
    html = re.sub(r"(<head[^>]*>)", lambda m: m.group(1) + base, html, count=1, flags=re.I)
    html = re.sub(r"(</body\s*>)", lambda m: PROBE + m.group(1), html, count=1, flags=re.I)
    with tempfile.TemporaryDirectory() as tmp:
        probe_page, netlog = Path(tmp) / "probe.html", Path(tmp) / "netlog.json"
        probe_page.write_text(html, encoding="utf-8")
        proc = _chromium([f"--log-net-log={netlog}", "--virtual-time-budget=10000",
                          f"--window-size={width},900",
                          "--dump-dom", probe_page.as_uri()], timeout)
        found = re.search(r'<pre id="vaebench-browser-check">(.*?)</pre>', proc.stdout, re.S)
        if found is None:
            raise RuntimeError(f"Chromium did not report on {index_html} (exit {proc.returncode}):"
                               f"\n{proc.stderr[-2000:]}")
        result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                            .replace("&lt;", "<").replace("&gt;", ">"))
        if not netlog.is_file():
            raise RuntimeError(f"Chromium wrote no NetLog for {index_html}")
        network = [u for u in page_requests(netlog) if u.lower().startswith(NETWORK_SCHEMES)]
    return BrowserView(images=result["images"], broken=result["broken"],
                       fetched=result["fetched"], network=network, height=result["height"])


def screenshot(index_html: str | Path, out_png: str | Path, width: int = 1280,
               height: int | None = None, timeout: float = 120) -> Path:
    """A PNG of the whole page (``height`` None: the page's rendered height)."""
    index_html, out_png = Path(index_html).resolve(), Path(out_png).resolve()
    if height is None:
        height = check_in_browser(index_html, width, timeout).height
    proc = _chromium([f"--window-size={width},{height}", "--hide-scrollbars",
                      f"--screenshot={out_png}", index_html.as_uri()], timeout)
    if not out_png.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    return out_png


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("--screenshot", type=Path, help="also save a full-page PNG here")
    args = ap.parse_args(argv)
    view = check_in_browser(args.page)
    print(f"{args.page}: {view.images} images, {len(view.broken)} broken, "
          f"{len(view.fetched)} resources fetched, {len(view.network)} network requests, "
          f"page height {view.height} px")
    for what, items in (("broken", view.broken), ("fetched", view.fetched),
                        ("network", view.network)):
        for item in items:
            print(f"  {what}: {item}")
    if args.screenshot:
        print(f"screenshot: {screenshot(args.page, args.screenshot)}")
    return 1 if view.broken or view.network else 0


if __name__ == "__main__":
    sys.exit(main())
