"""The web page in headless Chromium (Debian's chromium driven by Playwright): it loads, a request
returns, the 3Dmol.js viewer shows the conformers, stepping and the SDF download work."""

from __future__ import annotations

import io
import shutil

import httpx
import numpy as np
import pytest
from rdkit import Chem

from adjoint_sampling.core.paths import REPO_ROOT
from adjoint_sampling.service.routers.web import VENDOR_DIR
from adjoint_sampling.service.testing import start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_DIR = REPO_ROOT / "out" / "web_page"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start_server(tmp_path_factory.mktemp("web"), {"AS_MAX_CONFORMERS": "20"})
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1000, "height": 900}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(60_000)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(server.base_url + "/")
        page.requests_seen = requests  # type: ignore[attr-defined]
        yield page
        browser.close()


def test_assets_are_served_locally(server):
    assert (VENDOR_DIR / "3Dmol-min.js").is_file(), "3Dmol.js missing: run `make web`"
    html = httpx.get(server.base_url + "/").text
    assert '<script src="/static/vendor/3dmol/3Dmol-min.js">' in html
    js = httpx.get(server.base_url + "/static/vendor/3dmol/3Dmol-min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and len(js.content) > 100_000


def test_page_generates_and_shows_conformers(page, server):
    assert page.title().startswith("Conformers")
    page.wait_for_function("document.getElementById('model-name').textContent.includes('rdkit-etkdgv3')")
    assert page.evaluate("typeof $3Dmol") == "object"
    page.fill("#smiles", "CC(=O)Nc1ccc(O)cc1")
    page.fill("#n-conformers", "4")
    page.select_option("#relax", "mmff")
    page.click("#generate")
    page.wait_for_selector("#viewer canvas")
    page.wait_for_function("document.getElementById('viewer').dataset.conformerCount !== '0'")
    viewer = page.locator("#viewer")
    count = int(viewer.get_attribute("data-conformer-count"))
    assert 1 <= count <= 4
    assert viewer.get_attribute("data-atom-count") == "20"  # with hydrogens
    assert viewer.get_attribute("data-shown-index") == "0"
    label = page.text_content("#conformer-label")
    assert label.startswith(f"conformer 1 / {count}") and "kcal/mol" in label
    assert page.locator("#energies li").count() == count

    # the viewer really draws a molecule: many non-white pixels of several colours
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(path=str(SCREENSHOT_DIR / "viewer.png"))
    page.screenshot(path=str(SCREENSHOT_DIR / "page.png"), full_page=True)
    pixels = _pixels(shot)
    drawn = np.any(pixels < 235, axis=-1)
    assert drawn.mean() > 0.01, "the viewer canvas is blank"
    colours = {tuple(c // 64) for c in pixels[drawn]}
    assert len(colours) >= 3, "expected atoms of several elements in several colours"

    # stepping through the conformers changes the shown index and label
    if count > 1:
        page.click("#next")
        assert viewer.get_attribute("data-shown-index") == "1"
        assert page.text_content("#conformer-label").startswith(f"conformer 2 / {count}")
        page.click("#previous")
        assert viewer.get_attribute("data-shown-index") == "0"

    # the download is the SDF of the shown conformers
    with page.expect_download() as download_info:
        page.click("#download")
    path = download_info.value.path()
    supplier = Chem.SDMolSupplier(str(path), removeHs=False)
    mols = [m for m in supplier]
    assert len(mols) == count and all(m is not None and m.GetNumAtoms() == 20 for m in mols)
    assert all(m.HasProp("energy_kcal_mol") for m in mols)
    # nothing was fetched from outside the server
    assert all(url.startswith(server.base_url) or url.startswith("blob:") for url in page.requests_seen)


def test_page_shows_the_api_error_for_a_bad_smiles(page):
    page.fill("#smiles", "C1CC")
    page.click("#generate")
    page.wait_for_function("document.getElementById('status').className === 'error'")
    status = page.text_content("#status")
    assert status.startswith("422 invalid_smiles") and "cannot parse" in status


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
