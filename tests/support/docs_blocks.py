"""The fenced code blocks of README.md and docs/*.md, as the docs test runs them.

Every ```python and ```sh block runs, unless the line right before its
opening fence is ``<!-- not run: <reason> -->`` with a reason. A marker
without a reason, a marker that isn't right before a python/sh fence, a fence
without a language (nobody could tell whether it should run) and a run block
that installs packages are mistakes the parser reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGUAGES = frozenset({"python", "sh"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*not run:(?P<reason>.*?)-->\s*$")
_MARKER_START = re.compile(r"^\s*<!--\s*not run\b")
# A docs example must never change the machine it runs on.
_INSTALLS = re.compile(r"\b(pip3?|python3? -m pip) install\b|\bapt(-get)? install\b")


@dataclass(frozen=True)
class DocBlock:
    """One fenced block; ``line`` is the 1-based line of its opening fence."""

    path: str  # relative to the repository root, e.g. "docs/redis.md"
    line: int
    language: str
    code: str
    not_run: str | None  # the marker's reason, or None when the block runs

    @property
    def name(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.not_run is None


def doc_pages(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def parse_page(path: Path, root: Path = ROOT) -> tuple[list[DocBlock], list[str]]:
    """The page's fenced blocks and the mistakes found in its markers and fences."""
    name = path.relative_to(root).as_posix()
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[DocBlock] = []
    problems: list[str] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, language = opening["fence"], opening["info"].strip().split(" ")[0].lower()
        end = index + 1
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        where = f"{name}:{index + 1}"
        if end == len(lines):
            problems.append(f"{where}: fence never closed")
        if not language:
            problems.append(f"{where}: fence without a language (```text for output)")
        reason = _marker_reason(lines[index - 1]) if index > 0 else None
        if reason == "":
            problems.append(f"{where}: 'not run' marker without a reason")
        elif reason is not None and language not in RUN_LANGUAGES:
            problems.append(f"{where}: 'not run' marker on a ```{language} block, which never runs")
        code = "\n".join(lines[index + 1 : end]) + "\n"
        block = DocBlock(name, index + 1, language, code, reason)
        if block.runs and _INSTALLS.search(code):
            problems.append(f"{where}: installs packages; mark it <!-- not run: <reason> -->")
        blocks.append(block)
        index = end + 1
    fence_lines = {block.line - 1 for block in blocks}
    for number, text in enumerate(lines, 1):
        if _MARKER_START.match(text) and number not in fence_lines:
            problems.append(f"{name}:{number}: 'not run' marker not right before a fence")
    return blocks, problems


def _marker_reason(line: str) -> str | None:
    """The marker's reason ('' when it has none), or None for any other line."""
    match = _MARKER.match(line)
    if match is not None:
        return match["reason"].strip()
    return "" if _MARKER_START.match(line) else None


def all_blocks(root: Path = ROOT) -> tuple[list[DocBlock], list[str]]:
    """Every page's blocks, in page order, and every page's problems."""
    blocks: list[DocBlock] = []
    problems: list[str] = []
    for page in doc_pages(root):
        page_blocks, page_problems = parse_page(page, root)
        blocks += page_blocks
        problems += page_problems
    return blocks, problems
