"""The rollout widget in a real browser: JupyterLab + headless Chromium (Debian's chromium and
chromium-driver, driven by selenium). Opens a notebook that shows `RolloutWidget`, runs it,
presses the widget's Run button, then Pause; once paused, clicks a token of the stepper's strip
and finds the attention plot for that token; presses Resume and waits for the inline <video>
of the episode."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import gatolab as gl

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.mark.slow
def test_widget_run_shows_a_video_in_jupyterlab(tmp_path):
    from selenium import webdriver  # the "browser" extra
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), \
        "needs Debian's chromium and chromium-driver (scripts/system_deps.sh installs them)"
    from selenium.common.exceptions import (ElementClickInterceptedException, ElementNotInteractableException,
                                            NoSuchElementException, StaleElementReferenceException)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    run = tmp_path / "run"
    gl.train.train("tiny", out=run, progress=False,
                   overrides={"steps": 2, "data.source": "synthetic", "batch_size": 2, "seq_len": 64, "max_patches": 32})
    source = ("import gatolab as gl\n"
              f"w = gl.viz.rollouts.RolloutWidget([{str(run)!r}], domains=('classic',), max_steps=15)\n"
              "w.display()")
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None,
                     "id": "cell-00"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "widget.ipynb").write_text(json.dumps(nb))

    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp_path / "jupyter.log", "w")
    lab = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
                            "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    driver = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", 120)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                    "--autoplay-policy=no-user-gesture-required"):
            opts.add_argument(arg)
        driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=opts)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/widget.ipynb?token={token}")
        # JupyterLab re-renders the notebook while the kernel starts, so an element found a moment ago can
        # go stale: every wait ignores that and looks the element up again.
        flaky = (NoSuchElementException, StaleElementReferenceException, ElementClickInterceptedException,
                 ElementNotInteractableException)
        wait = WebDriverWait(driver, 180, ignored_exceptions=flaky)
        cell_css = (By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell .cm-content")
        wait.until(ec.element_to_be_clickable(cell_css))
        # Wait for the kernel, then run the cell (Shift+Enter in the focused cell).
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']")
                   or "Idle" in d.find_element(By.TAG_NAME, "body").text)

        def run_cell(d):
            d.find_element(*cell_css).click()
            webdriver.ActionChains(d).key_down("\ue008").send_keys("\ue007").key_up("\ue008").perform()  # Shift+Enter
            return True
        wait.until(run_cell)

        def press(label):
            def go(d):
                b = d.find_element(By.XPATH, f"//button[contains(@class, 'widget-button') and normalize-space(.)='{label}']")
                if not b.is_enabled():
                    return False
                b.click()
                return True
            return go
        wait.until(press("Run"))
        # Pause is enabled once the episode starts (while the checkpoint loads); the episode
        # then pauses at the agent's next decision and the stepper opens on its context.
        wait.until(press("Pause"))
        WebDriverWait(driver, 240, ignored_exceptions=flaky).until(
            lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, ".widget-html") if "paused at timestep" in e.text
                            and "Step or Resume" in e.text), None))
        token = 5
        def click_token(d):
            d.find_element(By.CSS_SELECTOR, f".gl-stepper .gl-token-{token}").click()
            return True
        wait.until(click_token)
        # The attention panel of that token: a plotly figure titled for it, one bar trace per layer and head.
        title = WebDriverWait(driver, 120, ignored_exceptions=flaky).until(
            lambda d: next((e for e in d.find_elements(By.CSS_SELECTOR, ".gl-stepper .js-plotly-plot .gtitle")
                            if e.text.startswith(f"attention of token {token}:")), None))
        plot = title.find_element(By.XPATH, "./ancestor::div[contains(@class, 'js-plotly-plot')]")
        assert len(plot.find_elements(By.CSS_SELECTOR, ".barlayer .trace")) == 2 * 4  # tiny: 2 layers x 4 heads
        wait.until(press("Resume"))
        video = WebDriverWait(driver, 240, ignored_exceptions=flaky).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-OutputArea video source, .jp-OutputArea video"))
        src = driver.execute_script(
            "const v = document.querySelector('.jp-OutputArea video'); const s = v.querySelector('source');"
            "return (s && s.src) || v.src || v.currentSrc;")
        assert src.startswith("data:video/mp4;base64,") and len(src) > 1000, src[:80]
        status = WebDriverWait(driver, 60, ignored_exceptions=flaky).until(
            lambda d: next((e.text for e in d.find_elements(By.CSS_SELECTOR, ".widget-html") if "done:" in e.text), None))
        assert "steps" in status and "ms/step" in status
        frame = driver.find_element(By.CSS_SELECTOR, ".widget-image")
        assert frame.get_attribute("src").startswith("blob:") or frame.get_attribute("src").startswith("data:")
        assert video
    except Exception:
        if driver is not None:
            driver.save_screenshot(str(tmp_path / "failure.png"))
        log.flush()
        print(open(tmp_path / "jupyter.log").read()[-3000:])
        raise
    finally:
        if driver is not None:
            driver.quit()
        lab.terminate()
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            lab.kill()
        log.close()
