"""Headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, kept on loopback.

Selenium is given both binaries, so Selenium Manager never runs (it would download drivers and
send usage statistics). Chromium's own background traffic (component updates, safe browsing,
metrics) is switched off, and every host name but the loopback ones resolves to nothing, so the
browser can reach only 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    "--window-size=1400,1000",
)


@contextlib.contextmanager
def headless_chromium(workdir: Path) -> Iterator[webdriver.Chrome]:
    """A browser with its profile and logs in ``workdir``; quit (with its driver) on exit."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(binary), f"{binary} missing (scripts/test.sh installs chromium)"
    os.environ["SE_AVOID_STATS"] = "true"
    workdir.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={workdir / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors to tests
    service = Service(CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
