"""Everything a reader needs is in the repository: no code, test or doc cites a file that a
plain clone does not have (the spec and seeds the project started from live outside it; their
rules are in docs/contract.md, docs/asyncapi.yaml, docs/design.md and docs/benchmarks.md)."""

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCES = {  # generated or installed, not written by us
    ".git", ".venv", "var", "test-artifacts", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis",
    ".mypy_cache", ".ruff_cache", "build", "dist", "htmlcov", "images", ".env",
}
TEXT_SUFFIXES = {".py", ".md", ".html", ".txt", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".ini", ".json", ".css", ""}
OUTSIDE = re.compile(r"\.\./shared|/work/|\b(?:DESIGN|CONTRACT|FLOOR)\.md|\bseeds/|\bseed 0\d\d\b")
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def sources():
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(d for d in subfolders if d not in NOT_SOURCES and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(folder) / name
            if name not in NOT_SOURCES and path.suffix in TEXT_SUFFIXES and path != Path(__file__).resolve():
                yield path.relative_to(ROOT), path


def test_nothing_cites_a_file_outside_the_repository():
    found = [
        f"{relative}:{number}: {line.strip()}"
        for relative, path in sources()
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_the_pattern_finds_what_it_is_meant_to():
    for line in ("see ../shared/spec/CONTRACT.md", "# (DESIGN.md)", "FLOOR.md's pitfall", "(seed 003)", "/work/main"):
        assert OUTSIDE.search(line), line
    assert not OUTSIDE.search("docs/contract.md, docs/design.md, docs/benchmarks.md, seeds N profiles")


def test_relative_links_in_the_docs_resolve():
    broken = [
        f"{relative}: {target}"
        for relative, path in sources()
        if path.suffix == ".md"
        for target in MARKDOWN_LINK.findall(path.read_text(encoding="utf-8"))
        if "://" not in target and not target.startswith("mailto:") and not (path.parent / target).exists()
    ]
    assert broken == []
