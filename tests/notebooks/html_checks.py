"""What a reader of the built book sees offline: rendered math, one parameters cell per chapter."""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup

MATHJAX = "_static/mathjax/tex-chtml.js"
# TeX left as text: \( \) or \[ \] delimiters, or $...$ around a TeX command
_RAW_TEX = re.compile(r"\\\(|\\\[|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$")
_NOT_PROSE = ("script", "style", "pre", "code")


def _remote(url: str | None) -> bool:
    return bool(url) and url.startswith(("http://", "https://", "//"))


def page_problems(page: Path, html_root: Path) -> list[str]:
    """Problems of one built page: remote scripts or styles, math MathJax will not typeset."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    name = str(page.relative_to(html_root))
    problems = [f"{name}: loads {tag.get('src') or tag.get('href')} from the network"
                for tag in soup.find_all(["script", "link"])
                if _remote(tag.get("src")) or (tag.name == "link" and _remote(tag.get("href"))
                                               and "stylesheet" in (tag.get("rel") or []))]
    math = soup.select(".math")
    scripts = [tag["src"] for tag in soup.find_all("script", src=True)
               if tag["src"].split("?")[0].endswith(MATHJAX)]
    if math and not scripts:
        problems.append(f"{name}: has math but does not load the local {MATHJAX}")
    for src in scripts:
        if not (page.parent / src.split("?")[0]).resolve().is_file():
            problems.append(f"{name}: {src} is missing from the build")
    for node in math:
        node.decompose()
    for tag in soup.find_all(_NOT_PROSE):
        tag.decompose()
    main = soup.find("main") or soup
    for match in _RAW_TEX.finditer(main.get_text(" ")):
        problems.append(f"{name}: math left as source: {match.group(0)[:60]!r}")
    return problems


def parameter_problems(page: Path, profile: str) -> list[str]:
    """A chapter shows exactly one parameters cell: the injected one, naming the profile."""
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    defaults = soup.select(".tag_parameters")
    injected = soup.select(".tag_injected-parameters")
    problems = []
    if defaults:
        problems.append(f"{page.name}: the notebook's default parameters cell is shown")
    if len(injected) != 1:
        problems.append(f"{page.name}: {len(injected)} injected parameters cells, expected 1")
    elif f"profile {profile!r}" not in injected[0].get_text():
        problems.append(f"{page.name}: the parameters cell does not name the profile {profile!r}")
    return problems


def check_built_book(html_root: Path, stems, profile: str) -> list[str]:
    problems = []
    for page in sorted(html_root.rglob("*.html")):
        if page.name in ("search.html", "genindex.html") or "_static" in page.parts:
            continue
        problems += page_problems(page, html_root)
    for stem in stems:
        problems += parameter_problems(html_root / "notebooks" / f"{stem}.html", profile)
    if not (html_root / "_static" / "mathjax" / "output" / "chtml" / "fonts").is_dir():
        problems.append("MathJax's fonts are missing from _static/mathjax")
    return problems
