"""Headless Chromium for the HTML report's browser test (tests/test_html_browser.py) and the
README's screenshot: Debian's `chromium` and `chromium-driver` driven through Selenium. What the
page requested and logged is read from Chrome's own logs (performance: the DevTools Network
events; browser: the console); its figures are read from the DOM through the DevTools protocol
with the page's scripts off, since the report must need none to be read.

    python tests/browser.py shot REPORT.html OUT.png [--width 1280 --height 800]

saves the first screen of a page at that width (docs/img/report.png is made this way)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Where Debian's packages put them; PATH first, so another install can stand in.
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
_DRIVER_PATHS = ("chromedriver", "/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def find_chromium() -> tuple[str, str] | tuple[None, str]:
    """(chromium, chromedriver) paths, or (None, why not) when either cannot be found."""
    browser = next((p for p in map(shutil.which, _CHROMIUM_NAMES) if p), None)
    driver = next((p for p in map(shutil.which, _DRIVER_PATHS) if p), None)
    if browser and driver:
        return browser, driver
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    return None, (f"{' and '.join(missing)} not found on PATH "
                  "(Debian: apt-get install chromium chromium-driver; .ci/run installs them)")


@dataclass
class Figure:
    """An element with data-figure: its name, data-value, other data-* attributes, and the text
    it shows (white space collapsed)."""

    name: str
    value: str | None
    text: str
    data: dict = field(default_factory=dict)


@dataclass
class Load:
    """What one page load did: every URL the page requested, and its console's errors."""

    requests: list[str]
    console_errors: list[str]


class Browser:
    """One headless Chromium; `open` sets the viewport, colour scheme and scripts afresh each
    time, so pages opened one after another do not inherit each other's settings."""

    def __init__(self, chromium: str, chromedriver: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for argument in ("--headless=new", "--disable-gpu", "--hide-scrollbars",
                         "--disable-dev-shm-usage",  # containers' /dev/shm is often 64 MB
                         "--disable-background-networking", "--no-first-run", "--mute-audio"):
            options.add_argument(argument)
        if os.geteuid() == 0:  # CI runs as root, where Chromium refuses its sandbox
            options.add_argument("--no-sandbox")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        # A driver path given: Selenium Manager is never asked to download one.
        self.driver = webdriver.Chrome(options=options, service=Service(chromedriver))

    def close(self) -> None:
        self.driver.quit()

    def cdp(self, method: str, **params):
        return self.driver.execute_cdp_cmd(method, params)

    def open(self, path: Path, width: int, height: int, *, dark: bool = False, scripts: bool = True) -> Load:
        """Loads the file at `path` (file://) in a `width` x `height` viewport (a phone's, with
        its meta viewport honoured, below 600 px), light or dark, with or without scripts."""
        self.driver.get_log("performance")  # drop what earlier loads left
        self.driver.get_log("browser")
        self.cdp("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                 mobile=width < 600)
        self.cdp("Emulation.setEmulatedMedia", media="screen",
                 features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}])
        self.cdp("Emulation.setScriptExecutionDisabled", value=not scripts)
        self.driver.get(Path(path).resolve().as_uri())
        return Load(self._requested(), self._console_errors())

    def _requested(self) -> list[str]:
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def _console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def figures(self) -> list[Figure]:
        """Every element carrying data-figure, in document order, read through the DevTools DOM
        (it works with the page's scripts off)."""
        found: list[Figure] = []

        def text_of(node) -> str:
            if node.get("nodeType") == 3:
                return node.get("nodeValue", "")
            return "".join(text_of(child) for child in node.get("children", ()))

        def walk(node) -> None:
            attributes = node.get("attributes", [])
            attrs = dict(zip(attributes[::2], attributes[1::2]))
            if "data-figure" in attrs:
                data = {k[5:]: v for k, v in attrs.items() if k.startswith("data-") and k not in
                        ("data-figure", "data-value")}
                found.append(Figure(attrs["data-figure"], attrs.get("data-value"),
                                    " ".join(text_of(node).split()), data))
            for child in node.get("children", ()):
                walk(child)

        walk(self.cdp("DOM.getDocument", depth=-1)["root"])
        return found

    def script(self, source: str):
        return self.driver.execute_script(source)

    def widths(self) -> dict:
        """The page's width against the viewport's: the page overflows if scroll > inner."""
        return self.script("return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth,"
                           " client: document.documentElement.clientWidth}")

    def background(self) -> tuple[int, int, int]:
        """The page's background colour: body's, or the root's where body's is transparent."""
        colour = self.script(
            "for (const e of [document.body, document.documentElement]) {"
            "  const c = getComputedStyle(e).backgroundColor;"
            "  if (c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; }"
            "return 'rgb(255, 255, 255)';")  # nothing painted: the canvas's white
        return tuple(int(n) for n in re.findall(r"[\d.]+", colour)[:3])

    def screenshot(self) -> bytes:
        """The viewport as PNG: the first screen."""
        return self.driver.get_screenshot_as_png()


def colour_count(png: bytes) -> tuple[int, float]:
    """Distinct colours in a PNG, and the share of pixels the commonest one covers."""
    from PIL import Image  # matplotlib's dependency, so always installed with tiercli

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    return len(colours), max(count for count, _ in colours) / (image.width * image.height)


def luminance(rgb: tuple[int, int, int]) -> float:
    return (0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]) / 255


def save_shot(page: Path, out: Path, width: int = 1280, height: int = 800) -> int:
    """Saves the first screen of `page` at `width` as a small PNG (a 256-colour palette);
    returns its size in bytes."""
    from PIL import Image

    chromium, driver = find_chromium()
    if chromium is None:
        raise SystemExit(driver)
    browser = Browser(chromium, driver)
    try:
        browser.open(page, width, height)
        png = browser.screenshot()
    finally:
        browser.close()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    return out.stat().st_size


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Save the first screen of an HTML page as PNG.")
    parser.add_argument("command", choices=["shot"])
    parser.add_argument("page", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args()
    size = save_shot(args.page, args.out, args.width, args.height)
    print(f"{args.out}: {args.width}x{args.height}, {size:,} bytes", file=sys.stderr)
