"""The chat page at /ui, driven in a real headless Chromium (Debian's, through Selenium): load, pick a model,
send, watch tokens arrive, stop, switch model, reload with the conversation kept; a screenshot is kept
in build/test-artifacts/ (PYOLLAMA_TEST_ARTIFACTS). Plus the switch and the API key, over plain HTTP."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromium-driver are not installed (scripts/browser.sh)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,850"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_script_timeout(30)
    yield d
    d.quit()


def _until(fn, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _js(d, script: str, *args):
    return d.execute_script(script, *args)


def _reply(d) -> str:
    return _js(d, "const m = document.querySelectorAll('.msg.assistant .content, .msg.error');"
                  "return m.length ? m[m.length - 1].textContent : '';")


def _pick(d, model: str) -> None:
    from selenium.webdriver.support.ui import Select
    # Read in the page: the elements are replaced as the page re-renders (no stale references).
    options = lambda: _js(d, "return Array.from(document.querySelectorAll('#model option'), o => o.value)")  # noqa: E731
    _until(lambda: model in options(), what=f"{model} in the model list {options()} "
                                            f"(status: {d.find_element('id', 'status').text!r})")
    Select(d.find_element("id", "model")).select_by_value(model)


def _send(d, text: str) -> None:
    from selenium.webdriver.common.keys import Keys
    box = d.find_element("id", "prompt")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)


@pytest.mark.model
@pytest.mark.browser
def test_chat_page(server, browser):
    d = browser
    d.get(server.url + "/ui")
    assert d.title == "pyollama"
    _js(d, "localStorage.clear()")
    d.refresh()
    # A model that never ends its answer: tokens arrive one paint after another until Stop.
    _pick(d, "tiny:latest")
    _send(d, "hello")
    lengths = [len(_until(lambda: _reply(d), what="the first tokens"))]
    for _ in range(3):
        lengths.append(len(_until(lambda: len(_reply(d)) > lengths[-1] and _reply(d), what="more tokens")))
    assert lengths == sorted(lengths) and len(set(lengths)) == 4
    assert d.find_element("id", "send").get_attribute("hidden") and not d.find_element("id", "stop").get_attribute("hidden")
    d.find_element("id", "stop").click()
    _until(lambda: "stopped" in d.find_element("id", "status").text, what="the stop")
    stopped = _reply(d)
    time.sleep(0.5)
    assert _reply(d) == stopped and not d.find_element("id", "send").get_attribute("hidden")
    # A new conversation with SmolLM2, which answers in a few words.
    d.find_element("id", "new").click()
    assert not d.find_elements("css selector", ".msg")
    _pick(d, "smollm2:135m")
    _js(d, "document.getElementById('temperature').value = '0'")
    _send(d, "What is the capital of France? Answer in one word.")
    _until(lambda: "tokens" in _js(d, "return Array.from(document.querySelectorAll('.msg.assistant .stats'), "
                                      "e => e.textContent).join('')"), what="the answer")
    assert "Paris" in _reply(d)
    assert "smollm2:135m" in [m["name"] for m in server.ps()]
    shots = Path(os.environ.get("PYOLLAMA_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))
    shots.mkdir(parents=True, exist_ok=True)
    assert d.save_screenshot(str(shots / "ui-chat.png"))
    # The conversation and the choice of model survive a reload (kept in the browser).
    d.refresh()
    _until(lambda: _js(d, "return document.querySelectorAll('.msg').length") == 2, what="the restored conversation")
    assert "Paris" in _reply(d)
    _until(lambda: d.find_element("id", "model").get_attribute("value") == "smollm2:135m", what="the model")
    # Markdown: escaped first, then a small safe subset.
    html = _js(d, "return markdown('```py\\nx < 1\\n```\\n**bold** <b>no</b>\\n- a\\n- b')")
    assert '<pre><code class="language-py">x &lt; 1\n</code></pre>' in html
    assert "<strong>bold</strong> &lt;b&gt;no&lt;/b&gt;" in html and "<ul><li>a</li><li>b</li></ul>" in html


def test_switch_and_api_key(serve):
    off = serve(PYOLLAMA_UI="0")
    assert off.get("/ui/").status_code == 404
    locked = serve(PYOLLAMA_API_KEY="s3cret")
    page = locked.get("/ui/")
    assert page.status_code == 200 and "<title>pyollama</title>" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert locked.get("/ui/ui.js").status_code == 200
    assert locked.get("/api/tags").status_code == 401
    assert locked.get("/api/tags", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(locked.url + "/ui", follow_redirects=False).status_code in (307, 308)
