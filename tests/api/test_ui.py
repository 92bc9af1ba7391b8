"""The status page at /ui: its files in-process, and the page in headless Chromium against a
live `inferd serve` (Debian's chromium and chromium-driver, `make system-deps`).

Screenshots go to ``test-artifacts/ui/`` at the repository root (ignored by git); each test
prints the path.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.servers import Server
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from inferd.api.app import build_app
from inferd.settings import Settings

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
ADMIN = "inferd_00000000_ui-test-admin-key"
NONE = "\N{EN DASH}"  # what the page shows for no value
WAIT_S = 20  # the page polls every 0.5 s in these tests; a step taking 20 s is a failure


@pytest.fixture
async def client(repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(home=tmp_path, model_repository=repo, admin_key=ADMIN))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


@pytest.mark.parametrize(
    ("path", "media", "needle"),
    [
        ("/ui", "text/html", b"<title>inferd status</title>"),
        ("/ui/", "text/html", b"/ui/app.js"),
        ("/ui/app.js", "text/javascript", b"/v1/models"),
        ("/ui/chart.js", "text/javascript", b"class LineChart"),
        ("/ui/style.css", "text/css", b"figure.chart"),
    ],
)
async def test_page_files_are_served_without_a_key(
    client: httpx.AsyncClient, path: str, media: str, needle: bytes
) -> None:
    r = await client.get(path)  # auth is on: the page holds no data, so it is open
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == media
    assert needle in r.content
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"


async def test_page_data_still_needs_a_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/models")).status_code == 401
    assert (await client.get("/v1/models/linear/metrics")).status_code == 401


async def test_unknown_page_files_and_other_methods_are_refused(client: httpx.AsyncClient) -> None:
    r = await client.get("/ui/missing.js")
    assert r.status_code == 404
    assert "/ui/missing.js" in r.json()["error"]
    r = await client.post("/ui")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET"


# ---- in a browser ----


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary, "needs Debian's chromium: make system-deps"
    assert driver, "needs Debian's chromium-driver: make system-deps"
    options = Options()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1500", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.set_page_load_timeout(WAIT_S)
    try:
        yield chrome
    finally:
        chrome.quit()


def _wait(browser: webdriver.Chrome, what: str, check: Callable[[], object]) -> None:
    WebDriverWait(browser, WAIT_S, poll_frequency=0.2).until(
        lambda _: check(), message=f"the page did not show {what} within {WAIT_S} s"
    )


def _chart(browser: webdriver.Chrome, model: str, metric: str) -> WebElement:
    return browser.find_element(
        By.CSS_SELECTOR, f'figure[data-model="{model}"][data-metric="{metric}"]'
    )


def _model_rows(browser: webdriver.Chrome) -> set[tuple[str, str, str]]:
    """(model, version, served state) of each row of the models table, read in one script
    call: the page redraws the table while it polls."""
    rows = browser.execute_script(
        "return [...document.querySelectorAll('#models tbody tr')]"
        ".map((r) => [r.dataset.model, r.dataset.version, r.cells[4].textContent]);"
    )
    return {(model, version, served) for model, version, served in rows}


def _rows(browser: webdriver.Chrome, table: str) -> dict[str, list[str]]:
    """Row id -> cell texts of the experiments or rollouts table, read in one script call."""
    rows = browser.execute_script(
        f"return [...document.querySelectorAll('#{table} tbody tr')]"
        ".map((r) => [...r.cells].map((c) => c.textContent));"
    )
    return {row[0]: row for row in rows}


def _screenshot(browser: webdriver.Chrome, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert browser.save_screenshot(str(path)), f"no screenshot written to {path}"
    print(f"screenshot: {path}")


def _script_errors(browser: webdriver.Chrome) -> list[str]:
    """Console errors other than failed fetches (an endpoint this server lacks is a 404)."""
    return [e["message"] for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") != "network"]  # fmt: skip


@pytest.mark.slow
def test_page_shows_the_models_and_charts_follow_traffic(
    browser: webdriver.Chrome, repo: Path, tmp_path: Path
) -> None:
    with Server(repo, tmp_path) as server:  # auth auto on 127.0.0.1: off
        browser.get(f"{server.url}/ui?refresh=0.5")
        served = {("linear", "1", "READY"), ("linear", "2", "READY"), ("mlp", "1", "READY")}
        _wait(browser, f"the served versions {served}", lambda: _model_rows(browser) >= served)
        rate = _chart(browser, "linear", "rate")
        _wait(browser, "a first point", lambda: int(rate.get_attribute("data-points") or 0) >= 1)
        assert float(rate.get_attribute("data-last") or "nan") == 0.0  # nothing sent yet
        points = int(rate.get_attribute("data-points") or 0)
        variants = [{"name": "a", "version": 1, "weight": 0.5},
                    {"name": "b", "version": 2, "weight": 0.5}]  # fmt: skip
        spec = {"name": "ui", "model": "linear", "variants": variants}
        created = httpx.post(f"{server.url}/v1/experiments", json=spec, timeout=10)
        created.raise_for_status()
        experiment = created.json()

        for i in range(40):
            body = {"model_name": "linear", "input_data": {"x": [float(i)]}}
            httpx.post(f"{server.url}/predict", json=body, timeout=10).raise_for_status()

        _wait(browser, "the rate chart rising",
              lambda: float(rate.get_attribute("data-last") or 0) > 0)  # fmt: skip
        assert int(rate.get_attribute("data-points") or 0) > points
        latency = _chart(browser, "linear", "latency")
        _wait(browser, "a p50 latency", lambda: (latency.get_attribute("data-last") or "") != "")
        assert float(latency.get_attribute("data-last") or "nan") > 0
        assert float(_chart(browser, "mlp", "rate").get_attribute("data-last") or "nan") == 0.0
        shown = [experiment["id"], "ui", "linear", experiment["state"], "50% / 50%", NONE]
        _wait(browser, f"experiment {shown}",
              lambda: _rows(browser, "experiments").get(experiment["id"]) == shown)  # fmt: skip
        statuses = {e.get_attribute("data-for"): e.text
                    for e in browser.find_elements(By.CSS_SELECTOR, ".status")}  # fmt: skip
        assert statuses["rollouts"] == "no rollouts"
        assert statuses["alerts"] in (  # /v1/alerts came with the alerting work
            "no alert rules on this server (inferd serve --alerts-file)",
            "alerts: not available on this server",
        )
        _screenshot(browser, "status_page")
        assert _script_errors(browser) == []


@pytest.mark.slow
def test_page_asks_for_a_key_with_auth_on_and_uses_it(
    browser: webdriver.Chrome, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFERD_ADMIN_KEY", ADMIN)
    with Server(repo, tmp_path, extra=["--auth", "on"]) as server:
        browser.get(f"{server.url}/ui?refresh=0.5")
        status = browser.find_element(By.CSS_SELECTOR, '.status[data-for="models"]')
        _wait(browser, "a request for a key", lambda: "API key" in status.text)
        assert _model_rows(browser) == set()
        key = browser.find_element(By.ID, "api-key")
        key.send_keys(ADMIN)
        browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        _wait(browser, "the models once the key is in",
              lambda: ("mlp", "1", "READY") in _model_rows(browser))  # fmt: skip
        mlp = _chart(browser, "mlp", "rate")
        _wait(browser, "a traffic point", lambda: mlp.get_attribute("data-last") == "0")
        _screenshot(browser, "status_page_auth")

        # A predict key: the served models and their traffic, not experiments or rollouts.
        headers = {"authorization": f"Bearer {ADMIN}"}
        created = httpx.post(f"{server.url}/v1/keys", json={"role": "predict", "name": "ui"},
                             headers=headers, timeout=10)  # fmt: skip
        created.raise_for_status()
        browser.find_element(By.ID, "forget-key").click()
        _wait(browser, "the models gone with the key", lambda: _model_rows(browser) == set())
        key.send_keys(created.json()["key"])
        browser.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        # Without registry access there is no stage or registry status: served state only.
        _wait(browser, "the served models to a predict key",
              lambda: ("mlp", "1", "READY") in _model_rows(browser))  # fmt: skip
        assert "operator key" in status.text
        experiments = browser.find_element(By.CSS_SELECTOR, '.status[data-for="experiments"]')
        refused = "experiments: not available to this key (needs the operator role)"
        _wait(browser, repr(refused), lambda: experiments.text == refused)
        _screenshot(browser, "status_page_predict_key")
        assert _script_errors(browser) == []
