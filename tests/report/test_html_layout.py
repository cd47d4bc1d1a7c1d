"""The HTML report in a real browser at 1400 and 900 px: nothing overflows the page, no text is cut or leaves its
box, the ladder fills its width, the legend explains the colours and tcpdump's direction letters, a drop has its
marker. Selenium drives Debian's chromium through chromium-driver; screenshots go to artifacts/report/."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cniscope.analyze import analyze
from cniscope.report import html
from cniscope.results import FindingKind
from cniscope.sources import InputSpec
from tests.paths import CORPUS, REPO, SEED
from tests.report.build import service_call

ARTIFACTS = REPO / "artifacts" / "report"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run")
WIDTHS = (1400, 900)


# Every problem with the page's geometry, as text: an empty list is a page that fits.
GEOMETRY = r"""
const problems = [], eps = 1;
const name = e => (e.id ? "#" + e.id : e.tagName.toLowerCase() + (e.getAttribute("class") ? "." + e.getAttribute("class").split(" ")[0] : ""))
                  + (e.textContent ? " '" + e.textContent.slice(0, 50) + "'" : "");
const inside = (b, r) => b.left >= r.left - eps && b.right <= r.right + eps && b.top >= r.top - eps && b.bottom <= r.bottom + eps;
if (document.documentElement.scrollWidth > document.documentElement.clientWidth + eps)
  problems.push(`the page is ${document.documentElement.scrollWidth} px wide in a ${document.documentElement.clientWidth} px window`);
for (const svg of document.querySelectorAll("main svg:not([aria-hidden])")) {
  const r = svg.getBoundingClientRect();
  for (const t of svg.querySelectorAll("text")) {
    const b = t.getBoundingClientRect();
    if (b.width && !inside(b, r)) problems.push(`cut by its drawing's edge: ${name(t)}`);
    if (t.textContent.includes("\u2026")) problems.push(`shortened: ${name(t)}`);
  }
}
for (const g of document.querySelectorAll("#topology-svg .box, #topology-svg .node")) {
  const r = g.querySelector("rect").getBoundingClientRect();
  for (const t of g.querySelectorAll("text")) if (!inside(t.getBoundingClientRect(), r)) problems.push(`out of its box: ${name(t)}`);
}
for (const cls of ["colhead", "colhead role", "colhead node"]) {
  const heads = [...document.querySelectorAll("#ladder text")].filter(t => t.getAttribute("class") === cls)
                  .map(t => t.getBoundingClientRect()).filter(b => b.width).sort((a, b) => a.left - b.left);
  for (let i = 1; i < heads.length; i++) if (heads[i].left < heads[i - 1].right - eps) problems.push(`ladder headings overlap (${cls})`);
}
for (const e of document.querySelectorAll("main *")) {
  if (e instanceof SVGElement || !e.clientWidth || e.scrollWidth <= e.clientWidth + eps) continue;
  const o = getComputedStyle(e).overflowX;
  if (o !== "auto" && o !== "scroll") problems.push(`overflows without a scroll bar: ${name(e)}`);
}
return problems;
"""


@pytest.fixture(scope="module")
def driver() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMEDRIVER).exists() and Path(CHROMIUM).exists()):  # installed by `make install` (APT_PACKAGES)
        pytest.fail("needs chromium and chromium-driver (Debian packages): run make install")

    profile = tempfile.mkdtemp(prefix="cniscope-selenium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def reports() -> dict[str, object]:
    lost = analyze([InputSpec(str(next(CORPUS.glob("12-*.txt"))), node="host0")])  # a DNS answer lost at flannel.1
    assert any(f.kind is FindingKind.DROP for f in lost.findings)
    return {
        "service-call": service_call(),  # two nodes, a Service's DNAT
        "dns-lost": lost,
        "weave-nodeport": analyze([InputSpec(str(next(CORPUS.glob("22-*.txt"))))]),  # DNAT and SNAT on one node
        "seed": analyze([InputSpec(str(SEED), "node3")]),
    }


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, tuple[Path, object]]:
    out = tmp_path_factory.mktemp("pages")
    made = {}
    for name, report in reports().items():
        html.write(report, str(out / f"{name}.html"))
        made[name] = (out / f"{name}.html", report)
    return made


def _open(driver, page: Path, width: int) -> None:
    driver.set_window_size(width, 1200)
    driver.get(page.resolve().as_uri())
    driver.execute_script("return document.readyState")


def _screenshot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(driver.get_window_size()["width"], min(height + 120, 6000))
    png = driver.get_screenshot_as_png()
    (ARTIFACTS / f"{name}.png").write_bytes(png)
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["service-call", "dns-lost", "weave-nodeport", "seed"])
def test_nothing_overflows_or_is_cut(driver, pages, name: str, width: int) -> None:
    page, report = pages[name]
    _open(driver, page, width)
    flows = driver.execute_script("return [...document.querySelectorAll('tr.flow')].map(r => r.dataset.flow)")
    assert flows
    for flow in flows:  # every conversation's ladder and the waterfall of its first packet
        driver.execute_script(f"document.querySelector('tr.flow[data-flow=\"{flow}\"]').click()")
        assert driver.execute_script(GEOMETRY) == [], (name, width, flow)
        ladder, room = driver.execute_script(
            "const l = document.querySelector('#ladder'); return [l.querySelector('svg').getBoundingClientRect().width, l.clientWidth]")
        assert ladder >= 0.95 * room  # the ladder uses the width it has
    _screenshot(driver, f"layout-{name}-{width}")


def test_a_lost_packet_is_marked_on_the_ladder_and_the_legend_says_what_colours_mean(driver, pages) -> None:
    page, report = pages["dns-lost"]
    lost = {j for f in report.findings if f.kind is FindingKind.DROP for j in f.journeys}
    flow = next(j.flow for j in report.journeys if j.id in lost)
    _open(driver, page, 1400)
    driver.execute_script(f"document.querySelector('tr.flow[data-flow=\"{flow}\"]').click()")
    marked = driver.execute_script("return [...document.querySelectorAll('.jr.lost')].map(g => +g.dataset.journey)")
    assert set(marked) == lost & {j.id for j in report.journeys if j.flow == flow} and marked
    assert driver.execute_script("return document.querySelectorAll('.jr.lost .lostmark').length") == len(marked)
    legend = driver.execute_script("return document.querySelector('#legend').innerText")
    for words in ("lost after its last sighting", "addresses rewritten", "tunnel envelope", "P to another host",
                  "B broadcast", "M multicast", "re-send"):
        assert words in legend
    # lost and rewritten are told apart by colour
    red, purple = driver.execute_script(
        "const s = getComputedStyle(document.documentElement); return [s.getPropertyValue('--bad'), s.getPropertyValue('--nat')]")
    assert red.strip() != purple.strip()


def test_the_header_counts_every_conversation(pages) -> None:
    page, report = pages["seed"]
    text = page.read_text()
    assert f"showing 1 of {report.flows_total} conversations" in text and f"{report.journeys_total} packets followed" in text


def test_the_geometry_check_finds_what_it_looks_for(driver, pages) -> None:
    """The check above on a page spoiled on purpose: a label longer than its box, a shortened heading, a paragraph
    wider than the page."""
    page, _ = pages["service-call"]
    _open(driver, page, 900)
    assert driver.execute_script(GEOMETRY) == []
    driver.execute_script("document.querySelector('#topology-svg .box text').textContent = 'vethlonglonglong'.repeat(6);"
                          "document.querySelector('#ladder text.colhead').textContent = 'kube-bri\u2026';"
                          "const p = document.createElement('p'); p.style.whiteSpace = 'nowrap'; p.id = 'wide';"
                          "p.textContent = 'x'.repeat(400); document.querySelector('main').appendChild(p);")
    found = "\n".join(driver.execute_script(GEOMETRY))
    assert "out of its box: text 'vethlonglong" in found
    assert "shortened: text.colhead 'kube-bri\u2026'" in found
    assert "the page is " in found and "overflows without a scroll bar: #wide 'xxx" in found
