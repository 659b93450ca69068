"""Screenshots for the docs: the review page and the latest night's report of a lakehouse (``make
screenshots`` runs it on the demo's). Reads only: nothing is approved or written in the lakehouse."""

from __future__ import annotations

import argparse
import shutil
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from pricing.config import load_config
from pricing.lakehouse import io
from pricing.lakehouse.tables import RUNS, Lakehouse
from pricing.platform.spark import build_spark
from pricing.review_app import ReviewPage, build_app


def _browser(width: int, height: int) -> webdriver.Chrome:
    options = Options()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--out", default="docs/img")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config("local", overrides=[f"paths.lakehouse={Path(args.lakehouse).resolve()}"])
    spark = build_spark(cfg.spark)
    root = io.qualify(spark, cfg.paths.lakehouse)

    server = make_server("127.0.0.1", 0, build_app(ReviewPage(spark, cfg, root)).server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = _browser(1400, 1750)
    try:
        wait = WebDriverWait(browser, 120)
        browser.get(f"http://127.0.0.1:{server.server_port}/")
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#proposals input[type=radio]"))
        # The SKU with the largest expected gain in the queue, with its price curve.
        browser.find_elements(By.CSS_SELECTOR, "#proposals input[type=radio]")[0].click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#curve .scatterlayer .trace"))
        browser.save_screenshot(str(out / "review_page.png"))
    finally:
        browser.quit()
        server.shutdown()

    row = Lakehouse(root).read(spark, RUNS).orderBy("run_date", ascending=False).first()
    if row is None or not row.report_path:
        raise SystemExit(f"{root} has no night with a report: run `make demo` first")
    report = Path(str(row.report_path).removeprefix("file:"))
    browser = _browser(1300, 900)
    try:
        browser.get(report.as_uri())
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1300, min(int(height) + 100, 4200))  # the first sections
        browser.save_screenshot(str(out / "night_report.png"))
    finally:
        browser.quit()
    print(f"wrote {out / 'review_page.png'} and {out / 'night_report.png'}")


if __name__ == "__main__":
    main()
