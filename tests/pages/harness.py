"""The pages under test: the real service (embedded, on a temporary folder) served by uvicorn on a
free port, and Debian's Chromium driven by Playwright (``executable_path``: no browser download).

``shoot(page, name)`` saves a screenshot beside the test and, when ``STORYMEDIA_SCREENSHOTS`` names
a folder (``docs/screenshots`` for the README), there too. ``axe_violations(page)`` runs axe-core
(from the npm registry: node_modules/axe-core) in the page.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.api.harness import LiveServer, Service

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


def chromium_path() -> str:
    found = os.environ.get("STORYMEDIA_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise RuntimeError(f"no Chromium at {found}: run `bash scripts/setup.sh --dev` (Debian's chromium)")
    return found


def launch_args() -> list[str]:
    # As root (CI, containers) Chromium needs --no-sandbox; /dev/shm may be small in containers.
    args = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return args


@dataclass
class Site:
    """The service as a browser reaches it."""

    service: Service
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, who: str) -> str:
        return self.service.tokens[who]

    def sign_in(self, page: Any, who: str, next_path: str = "/") -> None:
        """Sign ``page`` in as ``who`` (tests.api.harness.ROLES) through the sign-in form."""
        page.goto(f"{self.url}/signin?next={next_path}")
        page.fill("#token", self.token(who))
        with page.expect_navigation():
            page.click("button[type=submit]")


def shoot(page: Any, folder: Path, name: str, photos: bool = False) -> Path:
    """The whole page as PNG, or with ``photos`` (a page mostly of pictures) as JPEG: a tenth of
    the bytes."""
    path = folder / (f"{name}.jpg" if photos else f"{name}.png")
    if photos:
        page.screenshot(path=str(path), full_page=True, type="jpeg", quality=70)
    else:
        page.screenshot(path=str(path), full_page=True)
    published = os.environ.get("STORYMEDIA_SCREENSHOTS")
    if published:
        Path(published).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(published) / path.name)
    return path


def axe_violations(page: Any, impacts: tuple[str, ...] = ("critical", "serious")) -> list[dict[str, Any]]:
    """axe-core's violations of ``impacts`` on the page as it is now: id, impact, help, targets."""
    if not AXE.is_file():
        raise RuntimeError(f"{AXE} is missing: run `bash scripts/setup.sh --dev` (npm ci)")
    # Evaluated through the DevTools protocol, so the page's CSP (no inline script) allows it.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("""async () => {
        const found = await axe.run(document, {resultTypes: ['violations']});
        return found.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           targets: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    return [violation for violation in result if violation["impact"] in impacts]
