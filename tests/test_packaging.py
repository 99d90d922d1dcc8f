"""Packaging: a plain, non-editable install from a source archive into a fresh virtual
environment gives a `twistd` that lists `balanca`, with the live view and migrations."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from twisted.trial.unittest import TestCase

ROOT = Path(__file__).resolve().parent.parent
SKIP_PARTS = {".venv", ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis", "build"}


def source_archive(directory: Path) -> Path:
    """A plain .tar.gz of the checkout (no git metadata, so no version from git)."""
    archive = directory / "balanca-src.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(ROOT.rglob("*")):
            relative = path.relative_to(ROOT)
            if (
                path.is_file()
                and not SKIP_PARTS.intersection(relative.parts)
                and not path.name.endswith((".sqlite3", ".egg-info", "dropin.cache"))
                and ".egg-info" not in str(relative)
            ):
                tar.add(path, arcname=f"balanca-src/{relative}")
    return archive


class Install(TestCase):
    timeout = 600

    def test_a_fresh_install_from_a_source_archive_lists_the_balanca_plugin(self) -> None:
        work = Path(tempfile.mkdtemp(prefix="balanca-install-"))
        archive = source_archive(work)
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run(
            [str(venv / "bin/pip"), "install", "-q", str(archive)],
            capture_output=True,
            text=True,
            timeout=540,
        )
        self.assertEqual(pip.returncode, 0, pip.stderr[-3000:])
        help_text = subprocess.run(
            [str(venv / "bin/twistd"), "--help"],
            capture_output=True,
            text=True,
            cwd=work,
            timeout=60,
        ).stdout
        self.assertRegex(help_text, r"\n\s+balanca\s+Serve a weighing scale")
        plugin_help = subprocess.run(
            [str(venv / "bin/twistd"), "balanca", "--help"],
            capture_output=True,
            text=True,
            cwd=work,
            timeout=60,
        ).stdout
        self.assertIn("--ws-max-queue", plugin_help)
        site = subprocess.run(
            [
                str(venv / "bin/python"),
                "-c",
                "import balanca.http.site, balanca.store.store as s, pathlib; "
                "print(balanca.http.site.web_root()); print(pathlib.Path(s.__file__).parent)",
            ],
            capture_output=True,
            text=True,
            cwd=work,
            timeout=60,
        ).stdout.split()
        for page_file in (ROOT / "web").iterdir():  # every file the page and tickets load
            self.assertTrue(Path(site[0], page_file.name).exists(), page_file.name)
        for migration in (ROOT / "balanca" / "store" / "migrations").glob("*/*.sql"):
            installed = Path(site[1], "migrations", migration.parent.name, migration.name)
            self.assertTrue(installed.exists(), installed)
