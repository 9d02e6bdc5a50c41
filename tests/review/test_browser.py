"""End to end in a real headless Chromium (Debian's chromium + chromium-driver, via Selenium):
label with the keyboard, undo, reload, export. The README's screenshot is made here and
written to docs/ only with SHIPLOAD_UPDATE_DOCS=1, so a test run leaves the tree clean."""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC_SHOT = REPO / "docs" / "review.png"


@pytest.fixture
def browser() -> Iterator[object]:
    driver_exe = shutil.which("chromedriver")
    chrome = shutil.which("chromium") or shutil.which("chromium-browser")
    if driver_exe is None or chrome is None:
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--no-first-run", "--disable-background-networking"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(executable_path=driver_exe), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.mark.slow
def test_label_with_keys_undo_reload_export(browser: object, server: tuple[str, object],
                                            preds: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    drv: object = browser
    url, _ = server
    drv.get(url + "/")  # type: ignore[attr-defined]
    cards = drv.find_elements(By.CSS_SELECTOR, ".card")  # type: ignore[attr-defined]
    assert len(cards) == 13
    paths = [c.get_attribute("data-path") for c in cards]
    wait = WebDriverWait(drv, 20)

    def label_of(i: int) -> str:
        return drv.find_elements(By.CSS_SELECTOR, ".card")[i].get_attribute("data-label")  # type: ignore[attr-defined]

    def keys(*k: str) -> None:
        ActionChains(drv).send_keys(*k).perform()

    keys("e")
    wait.until(lambda d: label_of(0) == "empty")
    keys("l")
    wait.until(lambda d: label_of(1) == "laden")
    keys("u")
    wait.until(lambda d: label_of(2) == "unsure")
    keys("s", "l")  # skip chip 3, label chip 4 laden
    wait.until(lambda d: label_of(4) == "laden")
    keys("z")  # undo chip 4
    wait.until(lambda d: label_of(4) == "")
    keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT, "e")  # back to chip 2: unsure -> empty
    wait.until(lambda d: label_of(2) == "empty")
    assert "focus" in drv.find_elements(By.CSS_SELECTOR, ".card")[3].get_attribute("class")  # type: ignore[attr-defined]
    n_lab = drv.find_element(By.ID, "n-labelled").text  # type: ignore[attr-defined]
    assert n_lab == "3"

    drv.refresh()  # type: ignore[attr-defined]
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card")) == 13)
    assert [label_of(i) for i in range(5)] == ["empty", "laden", "empty", "", ""]
    shot = preds.with_name("review.png")
    drv.save_screenshot(str(shot))  # type: ignore[attr-defined]

    drv.find_element(By.ID, "export").click()  # type: ignore[attr-defined]
    wait.until(lambda d: "exported 3 labels" in d.find_element(By.ID, "status").text)
    rows = list(csv.DictReader(open(preds.with_name("preds.labels.csv"))))
    got = {Path(r["path"]).name: r["label"] for r in rows}
    assert got == {Path(paths[0]).name: "empty", Path(paths[1]).name: "laden",
                   Path(paths[2]).name: "empty"}
    assert shot.stat().st_size > 10_000
    if os.environ.get("SHIPLOAD_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, DOC_SHOT)
