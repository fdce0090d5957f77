"""The repository stands on its own: every design reference points at docs/architecture.md
(a clone has no other design document), and that page names every package and every pure-rule
module it lists."""

from __future__ import annotations

import re

from tests.source_scan import ROOT

TEXT_SUFFIXES = {".py", ".md", ".txt", ".ini", ".json", ""}
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis"}


def repository_texts():
    for path in sorted(ROOT.rglob("*")):
        if path.is_file() and path.suffix in TEXT_SUFFIXES and \
                not SKIP_DIRS.intersection(path.relative_to(ROOT).parts):
            try:
                yield path.relative_to(ROOT).as_posix(), path.read_text()
            except UnicodeDecodeError:
                continue


def test_no_reference_to_a_design_document_outside_the_repository():
    marker = "DESIGN" + ".md"  # spelled apart so this file does not find itself
    found = [f"{path}:{number}" for path, text in repository_texts()
             for number, line in enumerate(text.splitlines(), 1) if marker in line]
    assert found == [], "point these at docs/architecture.md:\n" + "\n".join(found)


def test_architecture_names_every_package_and_the_files_it_cites_exist():
    page = (ROOT / "docs" / "architecture.md").read_text()
    packages = sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")
    assert packages, "no packages found"
    missing = [p for p in packages if f"`{p}/`" not in page and f"`{p}`" not in page]
    assert missing == [], f"docs/architecture.md does not mention {missing}"
    cited = set(re.findall(r"`((?:csp|rpc|kv|lsp|miner|raft|actor|cmud|tests|scripts)/[\w/]+\.py)`",
                           page))
    assert cited, "the page cites no file"
    gone = sorted(path for path in cited if not (ROOT / path).exists())
    assert gone == [], f"docs/architecture.md cites files that do not exist: {gone}"
