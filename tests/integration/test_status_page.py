"""The status page in a real browser (Debian's headless Chromium) against a served monitor: every component shown,
Redis stopping turns red and raises its P0 without a reload, the P0's page acknowledges it, and the pages read the
same without JavaScript."""

from __future__ import annotations

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.browser import PAGE_TIMEOUT_SECONDS, chromium
from tests.support.monitor import alerting_monitor
from tools.devstack import wait_until
from tools.devstack.rules import shipped_rule

REDIS_DOWN = shipped_rule("RedisDown", interval_seconds=1, clear_for_seconds=2)


def row_ids(url: str) -> list[str]:
    """The rows the page must show: one per check and per provider of the JSON summary."""
    summary = httpx.get(f"{url}/api/v1/status", timeout=10).json()
    return [f"component-{c['name']}" for c in summary["components"]] + [
        f"provider-{p['key']}" for p in summary["providers"]
    ]


def state_of(driver: webdriver.Chrome, row_id: str) -> str | None:
    return driver.find_element(By.ID, row_id).get_attribute("data-state")


def test_status_page_live_and_static(stack, own_redis, receiver, workdir, tmp_path):
    """With JavaScript: every component shown; Redis stopped, its row turns down and the P0 joins the active alerts
    in the same page (no reload); a screenshot is kept. Without JavaScript: every component shown, rendered by the
    server, Redis down."""
    monitor = alerting_monitor(
        stack,
        workdir,
        {"rules": [REDIS_DOWN]},
        {"ops-hook": {"type": "webhook", "url": f"{receiver.url}/hook", "timeout_seconds": 2}},
        service_name="status-page-under-test",
        health={"redis_url": own_redis.redis_url},
    )
    monitor.start()
    try:
        wait_until(
            lambda: (
                httpx.get(f"{monitor.url}/api/v1/system/health", timeout=10).json()["checks"]["redis"]["status"]
                == "healthy"
            ),
            60,
            what="Redis healthy",
        )
        rows = row_ids(monitor.url)
        assert "component-redis" in rows and "provider-gemini" in rows

        with chromium() as driver:
            driver.get(f"{monitor.url}/")
            wait = WebDriverWait(driver, PAGE_TIMEOUT_SECONDS)
            for row in rows:
                assert driver.find_element(By.ID, row).is_displayed(), row
            assert state_of(driver, "component-redis") == "up"
            wait.until(lambda d: "live" in d.find_element(By.ID, "live").text)  # the WebSocket is open
            driver.execute_script("window.loadedOnce = true;")  # gone if the page were loaded again

            own_redis.stop()
            wait.until(lambda d: state_of(d, "component-redis") == "down")
            wait.until(
                lambda d: any(
                    "RedisDown" in item.text and "P0" in item.text
                    for item in d.find_elements(By.CSS_SELECTOR, "#alerts li.alert")
                )
            )
            assert driver.execute_script("return window.loadedOnce === true;")
            assert driver.find_element(By.ID, "overall").get_attribute("data-state") == "down"
            assert driver.save_screenshot(str(tmp_path / "status-page.png"))

            # The P0's page (where its notifications link): acknowledged from its form.
            driver.find_element(By.CSS_SELECTOR, "#alerts li.alert a[href^='/alerts/']").click()
            wait.until(lambda d: d.find_elements(By.ID, "ack-form"))
            fields = driver.find_element(By.ID, "ack-fields")
            wait.until(lambda d: fields.is_enabled())
            fields.find_element(By.NAME, "by").send_keys("ana")
            fields.find_element(By.NAME, "comment").send_keys("restarting Redis")
            fields.find_element(By.TAG_NAME, "button").click()
            wait.until(lambda d: d.find_element(By.ID, "ack-result").text == "Acknowledged.")
            assert driver.find_element(By.ID, "acknowledged").text.startswith("by ana at ")
            (alert,) = httpx.get(f"{monitor.url}/api/v1/alerts", timeout=10).json()["alerts"]
            assert alert["acknowledged"]["by"] == "ana" and driver.current_url.endswith(alert["fingerprint"])
            assert driver.save_screenshot(str(tmp_path / "alert-page.png"))

        with chromium(javascript=False) as driver:
            driver.get(f"{monitor.url}/")
            for row in rows:
                assert driver.find_element(By.ID, row).is_displayed(), row
            assert driver.find_element(By.ID, "live").text == ""  # the script never ran
            assert state_of(driver, "component-redis") == "down"
            assert "RedisDown" in driver.find_element(By.ID, "alerts").text
            assert driver.save_screenshot(str(tmp_path / "status-page-static.png"))
            driver.find_element(By.CSS_SELECTOR, "#alerts li.alert a[href^='/alerts/']").click()
            assert driver.find_element(By.ID, "acknowledged").text.startswith("by ana at ")  # rendered by the server
            assert not driver.find_element(By.NAME, "by").is_enabled()  # no script: the form stays off
    finally:
        monitor.stop()
