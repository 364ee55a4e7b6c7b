"""The README and the documentation site stay true: the two commands, the example, and every page a file cites.

mkdocs build --strict (.ci/run's docs phase) checks the links between pages; these tests check what it cannot
see: the README's first lines, and the docs/...md paths (with the section named after them) that code comments,
the chart and the scripts cite.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import yaml

from tests.fixtures.tools import REPO_ROOT
from vmbackup.model.policy import parse_policy

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"

# Where a file may cite a page: the code, the chart, the scripts and the build files (not docs/ itself).
CITING_DIRS = ("controller", "plugins", "dags_templates", "devstack", "bench", "scripts", "tests", "charts", ".ci")
CITING_FILES = ("Makefile", "Dockerfile", "pyproject.toml", "mkdocs.yml", "README.md")
SUFFIXES = {".py", ".yaml", ".yml", ".json", ".sh", ".tpl", ".txt", ".md", ""}
PAGE = re.compile(r"\bdocs/[A-Za-z0-9_./-]+\.md\b")
# `docs/x.md, "Section"` or `docs/x.md "Section"`: the section's title, on the same line as the page.
SECTION = re.compile(r"\b(docs/[A-Za-z0-9_./-]+\.md)\b,?:?\s*\"([^\"\n]+)\"")


@functools.cache
def citing_files() -> list[Path]:
    files = [REPO_ROOT / name for name in CITING_FILES]
    for folder in CITING_DIRS:
        files += [
            path
            for path in (REPO_ROOT / folder).rglob("*")
            if path.is_file() and path.suffix in SUFFIXES and "__pycache__" not in path.parts
        ]
    return [path for path in files if path.exists() and path != Path(__file__).resolve()]


@functools.cache
def citations() -> list[tuple[Path, int, str]]:
    found = []
    for path in citing_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            found += [(path, number, match) for match in PAGE.findall(line)]
    return found


def headings(page: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")]


def test_the_readme_starts_with_the_two_commands() -> None:
    first = "\n".join(README.read_text().splitlines()[:6])
    assert "make demo" in first, first
    assert "make test" in first, first
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_the_readme_is_one_screen() -> None:
    assert len(README.read_text().splitlines()) <= 90


def test_the_readmes_example_is_a_valid_policy() -> None:
    block = re.search(r"```yaml\n(.*?)```", README.read_text(), re.S)
    assert block, "the README has no yaml example"
    obj = yaml.safe_load(block.group(1))
    assert obj["kind"] == "VMBackupPolicy"
    parse_policy(obj["metadata"]["namespace"], obj["metadata"]["name"], obj["spec"])


def test_the_readmes_links_resolve() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if "://" not in target:
            assert (REPO_ROOT / target).exists(), target


def test_files_cite_some_pages() -> None:
    assert len(citations()) >= 10  # the scan finds the comments it is meant to check


@pytest.mark.parametrize("page", sorted({cited for _, _, cited in citations()}))
def test_every_cited_page_exists(page: str) -> None:
    where = [f"{path.relative_to(REPO_ROOT)}:{number}" for path, number, cited in citations() if cited == page]
    assert (REPO_ROOT / page).is_file(), f"{page} does not exist; cited at {', '.join(where)}"


def test_every_cited_section_is_a_heading_of_its_page() -> None:
    missing = []
    for path in citing_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for page, section in SECTION.findall(line):
                target = REPO_ROOT / page
                if target.is_file() and not any(section in heading for heading in headings(target)):
                    missing.append(f"{path.relative_to(REPO_ROOT)}:{number}: {page} has no section {section!r}")
    assert not missing, "\n".join(missing)


def test_no_file_cites_the_readmes_old_sections() -> None:
    """The README's long sections moved to docs/: a comment citing `README "Section"` points nowhere now."""
    stale = []
    for path in citing_files():
        if path == README:
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if re.search(r"README(?:'s)?[,:]?\s*\(?\\?\"|README's [\w -]+ section", line):
                stale.append(f"{path.relative_to(REPO_ROOT)}:{number}")
    assert not stale, "cite the docs/ page instead: " + ", ".join(stale)


def test_ci_builds_the_site_strictly() -> None:
    """--quiet would hide the warnings --strict counts: mkdocs then passes with a broken link."""
    lines = [line for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines() if "mkdocs build" in line]
    assert lines, ".ci/run has no docs phase"
    assert all("--strict" in line and "--quiet" not in line and " -q " not in line for line in lines), lines
