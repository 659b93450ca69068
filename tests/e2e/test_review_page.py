"""The review page in a real headless browser (Debian's chromium through chromedriver): load, filter,
approve one SKU, refuse a price outside its band, and the Delta tables afterwards."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from review_support import NIGHT, price_lakehouse

from pricing.config import load_config
from pricing.decide.review import decision_history
from pricing.lakehouse.tables import (
    CURRENT_PRICES,
    PRICE_DECISIONS,
    PRICE_OVERRIDES,
    PRICE_RECOMMENDATIONS,
    Lakehouse,
)
from pricing.review_app import ReviewPage, build_app

pytestmark = pytest.mark.slow

WAIT_S = 60


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_path):
        pytest.fail("the browser test needs chromium and chromedriver: `make browser` installs them")
    options = Options()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page_url(spark: SparkSession, price_template: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    from werkzeug.serving import make_server

    root = price_lakehouse(spark, price_template, tmp_path)
    cfg = load_config("local", overrides=[f"train.tracking_uri=sqlite:///{tmp_path}/mlflow.db"])
    server = make_server(
        "127.0.0.1", 0, build_app(ReviewPage(spark, cfg, Lakehouse.at(spark, root))).server, threaded=True
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", root
    finally:
        server.shutdown()
        thread.join()


def test_load_filter_approve_and_refuse_in_a_browser(
    spark: SparkSession, browser: Any, page_url: tuple[str, str]
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, root = page_url
    # Dash re-renders the table after each callback: a row read while it is replaced is stale, and
    # the wait reads the rows again instead of failing (4 failures in 15 runs on 2026-12-07).
    wait = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def skus() -> list[str]:
        return [
            c.text for c in browser.find_elements(By.CSS_SELECTOR, '#proposals td[data-dash-column="sku"]')
        ]

    def shown(expected: list[str]) -> Any:
        return wait.until(lambda _: skus() == expected, f"expected rows {expected}")

    def message(part: str) -> None:
        wait.until(lambda _: part in browser.find_element(By.ID, "message").text, f"no message with {part!r}")

    browser.get(url)
    assert f"prices for {NIGHT}" in wait.until(lambda b: b.find_element(By.TAG_NAME, "h2")).text
    shown(["D", "A", "B"])  # what waits for review, largest expected gain first
    # Filter: also the auto-approved ones; then only what waits again.
    status = "//div[@id='filter-status']//input[@value='{}']/ancestor::label"
    browser.find_element(By.XPATH, status.format("auto_approved")).click()
    shown(["D", "A", "B", "C"])
    browser.find_element(By.XPATH, status.format("auto_approved")).click()
    shown(["D", "A", "B"])

    # Approve A: select its row, name the author, click Approve.
    browser.find_elements(By.CSS_SELECTOR, "#proposals input[type=radio]")[1].click()
    wait.until(lambda b: b.find_element(By.ID, "sku").get_attribute("value") == "A")
    browser.find_element(By.ID, "author").send_keys("ana")
    browser.find_element(By.ID, "note").send_keys("checked the supplier")
    browser.find_element(By.ID, "approve").click()
    message("1 price(s) for 2026-03-02 approved by ana")
    shown(["D", "B"])  # A left the queue

    # A price outside D's band [32, 48] is refused with the reason, and changes nothing.
    versions = _versions(spark, root)
    sku = browser.find_element(By.ID, "sku")
    sku.clear()
    sku.send_keys("D", Keys.ENTER)
    browser.find_element(By.ID, "override-price").send_keys("55")
    browser.find_element(By.ID, "override").click()
    message("refused: nothing changed: 55.00 is outside D's band [32.00, 48.00]")
    assert _versions(spark, root) == versions

    tables = Lakehouse(root)
    night = tables.read(spark, PRICE_RECOMMENDATIONS).where(f"price_date = DATE'{NIGHT}'")
    assert {r.sku: (r.status, r.final_price) for r in night.collect()}["A"] == ("approved", 11.5)
    current = tables.read(spark, CURRENT_PRICES).where("sku = 'A'").first()
    assert current is not None and (current.price, current.status) == (11.5, "approved")
    (decided,) = decision_history(spark, Lakehouse.at(spark, root)).collect()
    assert (decided.sku, decided.decision, decided.author, decided.note) == (
        "A",
        "approved",
        "ana",
        "checked the supplier",
    )


def _versions(spark: SparkSession, root: str) -> dict[str, int]:
    tables = Lakehouse(root)
    return {
        t.label: int(tables.history(spark, t).first()["version"])  # type: ignore[index]
        for t in (PRICE_RECOMMENDATIONS, CURRENT_PRICES, PRICE_DECISIONS, PRICE_OVERRIDES)
        if tables.exists(spark, t)
    }
