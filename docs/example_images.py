"""Draw the example project's article images (images/*.jpg) in headless Chromium.

    .venv/bin/python docs/example_images.py

Each picture is an SVG composition of our own (no stock photos, nothing fetched),
photographed at 1104x552 (twice the 552 px the emails show) as a JPEG.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 1104, 552


def _wave(amplitudes: list[float], colour: str, y: float, step: float = 24) -> str:
    bars = []
    for i, a in enumerate(amplitudes):
        x = 40 + i * step
        h = a * 180
        bars.append(
            f'<rect x="{x:.0f}" y="{y - h / 2:.0f}" width="{step * 0.55:.0f}" '
            f'height="{h:.0f}" rx="6" fill="{colour}"/>'
        )
    return "".join(bars)


def burnout() -> str:
    import math

    loud = [0.25 + 0.7 * abs(math.sin(i * 0.55)) * (1 - i / 60) for i in range(43)]
    return (
        '<rect width="1104" height="552" fill="#1f3b36"/>'
        '<rect y="352" width="1104" height="200" fill="#18302c"/>'
        + _wave(loud, "#e8b04a", 260)
        + '<circle cx="930" cy="130" r="60" fill="#f4f1ec" opacity="0.9"/>'
        '<circle cx="955" cy="115" r="60" fill="#1f3b36"/>'
    )


def rest() -> str:
    return (
        '<rect width="1104" height="552" fill="#f4e9dc"/>'
        '<rect x="620" y="60" width="380" height="300" rx="10" fill="#bcd8d0"/>'
        '<rect x="620" y="60" width="380" height="300" rx="10" fill="none" '
        'stroke="#6b4f3a" stroke-width="14"/>'
        '<line x1="810" y1="60" x2="810" y2="360" stroke="#6b4f3a" stroke-width="10"/>'
        '<circle cx="900" cy="150" r="40" fill="#f6d27a"/>'
        '<rect x="140" y="250" width="300" height="90" rx="30" fill="#2f6f62"/>'
        '<rect x="120" y="180" width="70" height="200" rx="30" fill="#2f6f62"/>'
        '<rect x="150" y="340" width="20" height="120" fill="#6b4f3a"/>'
        '<rect x="410" y="340" width="20" height="120" fill="#6b4f3a"/>'
        '<path d="M470 430 q40 -120 20 -200 q60 60 30 200z" fill="#5b8f4f"/>'
        '<rect x="455" y="420" width="80" height="70" rx="8" fill="#c7663f"/>'
        '<rect y="480" width="1104" height="72" fill="#d9c7b0"/>'
    )


def supervision() -> str:
    return (
        '<rect width="1104" height="552" fill="#eef3f1"/>'
        '<circle cx="470" cy="276" r="190" fill="#2f6f62" opacity="0.85"/>'
        '<circle cx="640" cy="276" r="190" fill="#e8b04a" opacity="0.8"/>'
        '<path d="M555 106 a190 190 0 0 1 0 340 a190 190 0 0 1 0 -340z" fill="#f4f1ec" '
        'opacity="0.55"/>'
        '<rect x="80" y="460" width="944" height="8" rx="4" fill="#c9d6d1"/>'
    )


def clay() -> str:
    return (
        '<rect width="1104" height="552" fill="#fbf4ea"/>'
        '<rect x="90" y="70" width="330" height="250" fill="#c7663f" transform="rotate(-6 255 195)"/>'
        '<rect x="360" y="150" width="280" height="300" fill="#2f6f62" '
        'transform="rotate(4 500 300)"/>'
        '<circle cx="800" cy="210" r="130" fill="#e8b04a"/>'
        '<path d="M640 470 q120 -160 260 -40 q70 60 150 20 v92 h-410z" fill="#8a5a44"/>'
        '<ellipse cx="250" cy="430" rx="140" ry="70" fill="#b88a6a"/>'
        '<ellipse cx="250" cy="410" rx="110" ry="45" fill="#d1a783"/>'
        '<path d="M700 90 l60 30 l-20 60 l-70 -10z" fill="#1f3b36" opacity="0.8"/>'
    )


def winter() -> str:
    flakes = "".join(
        f'<circle cx="{(i * 137) % 1104}" cy="{(i * 71) % 330}" r="{3 + i % 4}" '
        'fill="#ffffff" opacity="0.8"/>'
        for i in range(40)
    )
    return (
        '<rect width="1104" height="552" fill="#9fc3d6"/>'
        + flakes
        + '<path d="M0 400 L220 170 L380 330 L560 120 L780 360 L930 230 L1104 380 V552 H0z" '
        'fill="#f4f7f9"/>'
        '<path d="M220 170 L270 222 L240 215 L205 240 L180 212z" fill="#dfe8ee"/>'
        '<path d="M560 120 L620 190 L585 180 L550 205 L520 170z" fill="#dfe8ee"/>'
        '<rect y="470" width="1104" height="82" fill="#2f6f62"/>'
        '<path d="M120 470 l40 -110 l40 110z M860 470 l50 -140 l50 140z" fill="#1f3b36"/>'
    )


PICTURES = {
    "what-burnout-sounds-like": burnout,
    "the-case-for-rest-between-sessions": rest,
    "supervision-is-not-a-report-card": supervision,
    "clay-collage-and-courage": clay,
    "winter-workshop-boundaries-and-ethics": winter,
    "five-minute-grounding": rest,
    "why-peer-consultation-matters": supervision,
    "saying-no-to-one-more-client": burnout,
}


def main() -> int:
    out = ROOT / "images"
    out.mkdir(exist_ok=True)
    scaffold = ROOT / "src" / "newsletter" / "scaffold" / "images"
    scaffold.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        for name, draw in PICTURES.items():
            svg = (
                f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
                f'viewBox="0 0 {WIDTH} {HEIGHT}">{draw()}</svg>'
            )
            page.set_content(f"<body style='margin:0'>{svg}</body>")
            folder = scaffold if name in ("five-minute-grounding", "why-peer-consultation-matters",
                                          "saying-no-to-one-more-client") else out
            target = folder / f"{name}.jpg"
            page.screenshot(path=str(target), type="jpeg", quality=82)
            print(f"{target.relative_to(ROOT)}: {target.stat().st_size} bytes")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
