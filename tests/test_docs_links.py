"""Every relative link in the documentation resolves: the file exists, and an anchor names
a heading of that file under GitHub's slug rules."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def documents() -> list[Path]:
    """README.md, docs/**/*.md and the other READMEs in the repository."""
    found = {ROOT / "README.md"}
    found.update((ROOT / "docs").rglob("*.md"))
    for sub in ("bench", "deploy", "tests"):
        found.update((ROOT / sub).rglob("*.md"))
    return sorted(p for p in found if p.is_file())


def prose(text: str) -> list[str]:
    """The lines of a markdown text outside fenced code blocks."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
            continue
        if fence is None:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation other than
    - and _ removed, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file; a repeated heading gets -1, -2, ..."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose(path.read_text(encoding="utf-8")):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    """The link targets of a markdown file, outside code (fenced or inline)."""
    out: list[str] = []
    for line in prose(path.read_text(encoding="utf-8")):
        line = re.sub(r"`[^`]*`", "", line)
        out.extend(m.group(1) for m in LINK.finditer(line))
    return out


def broken(path: Path) -> list[str]:
    """The relative links of one file that do not resolve, each with the reason."""
    problems: list[str] = []
    for target in links(path):
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: no file {dest.relative_to(ROOT)}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    return problems


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(doc: Path) -> None:
    assert broken(doc) == []


def test_slugs_follow_github() -> None:
    assert slug("Blind checks and monitor health") == "blind-checks-and-monitor-health"
    assert slug("`monitor check --json`") == "monitor-check---json"
    assert slug("`kind: http`") == "kind-http"
    assert slug("Maintenance windows and silences") == "maintenance-windows-and-silences"
    assert slug("snake_case and P0\u2013P2") == "snake_case-and-p0p2"


def test_a_broken_link_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Top\n\n## Same\n\n## Same\n", encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(
        "[ok](docs/a.md#same-1) [ok](#here) [web](https://example.org/x#y)\n"
        "`[code](nowhere.md)`\n\n```\n[fenced](nowhere.md)\n```\n\n## Here\n"
        "[gone](docs/b.md) [bad](docs/a.md#same-2) [self](#there)\n",
        encoding="utf-8",
    )
    assert broken(readme) == [
        "docs/b.md: no file docs/b.md",
        "docs/a.md#same-2: no heading #same-2 in docs/a.md",
        "#there: no heading #there in README.md",
    ]
