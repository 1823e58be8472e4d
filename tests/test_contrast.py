"""Text contrast of every built-in template, in light and in dark mode, measured in Chromium.

Apple Mail, Outlook for Mac and iOS and outlook.com apply the email's
``prefers-color-scheme: dark`` rules. Every element with visible text of its own
is measured as the browser renders it: its computed colour against the first
opaque background behind it (semi-transparent layers composited), by the WCAG
2.x contrast formula. Body text needs 4.5:1; links and titles (large text, or
inside h1-h3 or a card title) need 3:1. Images are not loaded, so the alt text
a reader sees when images are blocked is measured too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import CHROMIUM, CHROMIUM_ARGS
from example_emails import TEMPLATES, build_example

BODY_TEXT = 4.5
LARGE_TEXT = 3.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]

# One record per element with visible text of its own: what it is, its colours, its ratio.
MEASURE = """
() => {
  const parse = (value) => {
    const m = /rgba?\\(([^)]*)\\)/.exec(value);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, under) => {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat([1]);
  };
  const luminance = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const hex = (c) => "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
  const probe = document.createElement("div");
  probe.style.backgroundColor = "Canvas";
  document.documentElement.appendChild(probe);
  const canvas = parse(getComputedStyle(probe).backgroundColor);
  probe.remove();
  // the colour behind an element, or null when a background image is in the way
  const backdrop = (el) => {
    const layers = [];
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      const style = getComputedStyle(n);
      if (style.backgroundImage !== "none") return null;
      const c = parse(style.backgroundColor);
      if (c && c[3] > 0) {
        layers.push(c);
        if (c[3] >= 1) break;
      }
    }
    return layers.reverse().reduce((under, top) => over(top, under), canvas);
  };
  const describe = (el) => {
    const parts = [];
    for (let n = el; n && n.nodeType === 1 && parts.length < 3; n = n.parentElement) {
      parts.unshift(n.tagName.toLowerCase() + (n.className ? "." + String(n.className).trim().split(/\\s+/).join(".") : ""));
    }
    return parts.join(" > ");
  };
  const found = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
    let text;
    if (el.tagName === "IMG") {
      // an image that is not shown (blocked, as here: no network) shows its alt text instead
      const box = el.getBoundingClientRect();
      if (el.naturalWidth || !el.alt.trim() || !box.width || !box.height) continue;
      text = "[alt] " + el.alt;
    } else {
      const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.data.trim());
      const range = document.createRange();
      const visible = own.some((n) => {
        range.selectNodeContents(n);
        const box = range.getBoundingClientRect();
        return box.width > 0 && box.height > 0;
      });
      if (!visible) continue;
      text = own.map((n) => n.data).join(" ");
    }
    const style = getComputedStyle(el);
    const back = backdrop(el);
    if (!back) continue;
    const fore = over(parse(style.color), back);
    const [hi, lo] = [luminance(fore), luminance(back)].sort((a, b) => b - a);
    const size = parseFloat(style.fontSize);
    const bold = parseInt(style.fontWeight, 10) >= 700;
    const large = size >= 24 || (size >= 18.66 && bold);
    const link = !!el.closest("a");
    const title = large || !!el.closest("h1, h2, h3, .card-title");
    found.push({
      element: describe(el),
      text: text.trim().replace(/\\s+/g, " ").slice(0, 50),
      color: hex(fore),
      background: hex(back),
      ratio: (hi + 0.05) / (lo + 0.05),
      kind: link ? "link" : title ? "title" : "text",
    });
  }
  return found;
}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def measure(browser: Any, html: str, scheme: str) -> list[dict[str, Any]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    try:
        page.route("**/*", lambda route: route.abort())  # the images are remote: no network
        page.emulate_media(color_scheme=scheme)
        page.set_content(html, wait_until="domcontentloaded")
        return page.evaluate(MEASURE)
    finally:
        page.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("template", TEMPLATES)
def test_text_contrast_in_light_and_dark_mode(
    project: Path, browser: Any, template: str, scheme: str, record_property: Any
) -> None:
    html = (build_example(project, template) / "email.html").read_text(encoding="utf-8")
    found = measure(browser, html, scheme)
    assert found, "no visible text was measured"
    for item in found:
        item["needed"] = BODY_TEXT if item["kind"] == "text" else LARGE_TEXT
    lowest = min(found, key=lambda item: item["ratio"])
    lowest_text = min(
        (item for item in found if item["kind"] == "text"), key=lambda item: item["ratio"]
    )
    summary = (
        f"{template}/{scheme}: {len(found)} elements; lowest {lowest['ratio']:.2f}:1 "
        f"({lowest['kind']} {lowest['element']} {lowest['text']!r} {lowest['color']} "
        f"on {lowest['background']}); lowest body text {lowest_text['ratio']:.2f}:1 "
        f"({lowest_text['element']} {lowest_text['text']!r})"
    )
    print(summary)
    record_property("contrast", summary)
    failing = [item for item in found if item["ratio"] < item["needed"]]
    assert not failing, f"{summary}\n" + "\n".join(
        f"  {item['ratio']:.2f}:1 < {item['needed']}:1  {item['kind']:5} {item['element']} "
        f"{item['text']!r}: {item['color']} on {item['background']}"
        for item in failing
    )
