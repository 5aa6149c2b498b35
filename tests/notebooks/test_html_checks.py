"""The rendered-book checks find what a reader would see offline (synthetic pages, no build)."""

from __future__ import annotations

from .html_checks import check_built_book

GOOD_CHAPTER = """<html><head><script defer src="../_static/mathjax/tex-chtml.js"></script></head>
<body><main><span class="math notranslate">\\(h + b\\)</span>
<div class="cell tag_injected-parameters"><pre># Parameters of this run: profile 'smoke'</pre></div>
<pre>code with $x \\cdot y$ is fine</pre></main></body></html>"""


def _book(tmp_path, chapter: str):
    html = tmp_path / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "_static" / "mathjax" / "output" / "chtml" / "fonts").mkdir(parents=True)
    (html / "_static" / "mathjax" / "tex-chtml.js").write_text("// MathJax")
    (html / "notebooks" / "01_x.html").write_text(chapter)
    return html


def test_a_good_page_passes(tmp_path):
    assert check_built_book(_book(tmp_path, GOOD_CHAPTER), ["01_x"], "smoke") == []


def test_cdn_mathjax_and_raw_tex_are_found(tmp_path):
    page = GOOD_CHAPTER.replace(
        '"../_static/mathjax/tex-chtml.js"',
        '"https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"').replace(
        "</main>", "<p>steer with $h_\\ell \\leftarrow h_\\ell$</p></main>")
    problems = check_built_book(_book(tmp_path, page), ["01_x"], "smoke")
    assert any("from the network" in p for p in problems), problems
    assert any("does not load the local" in p for p in problems), problems
    assert any("math left as source" in p for p in problems), problems


def test_duplicated_or_unlabelled_parameters_are_found(tmp_path):
    page = GOOD_CHAPTER.replace("<main>", '<main><div class="cell tag_parameters"></div>')
    problems = check_built_book(_book(tmp_path, page), ["01_x"], "smoke")
    assert any("default parameters cell is shown" in p for p in problems), problems
    problems = check_built_book(_book(tmp_path / "b", GOOD_CHAPTER), ["01_x"], "cpu")
    assert any("does not name the profile 'cpu'" in p for p in problems), problems


def test_missing_mathjax_files_are_found(tmp_path):
    html = _book(tmp_path, GOOD_CHAPTER)
    (html / "_static" / "mathjax" / "tex-chtml.js").unlink()
    problems = check_built_book(html, ["01_x"], "smoke")
    assert any("missing from the build" in p for p in problems), problems
