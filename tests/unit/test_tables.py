"""Tables in the book print rounded numbers (esr_utils.plotting.format_number), never raw floats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from esr_utils.plotting import format_number, use_house_style


@pytest.mark.parametrize(("value", "shown"), [
    (0.0, "0"), (1234.5678, "1,235"), (150.0, "150"), (12.3456, "12.3"), (36.10, "36.1"),
    (1.0, "1"), (0.123456, "0.123"), (0.0000123, "1.2e-05"), (-0.5, "-0.5"),
    (np.float32(0.25), "0.25"), (float("nan"), "–"),
    (7, "7"), (True, "True"), ("text", "text"),
])
def test_format_number(value, shown):
    assert format_number(value) == shown


def test_house_style_formats_dataframes_and_stylers():
    frame = pd.DataFrame({"rate": [0.0, 0.123456789], "n": [3, 4], "name": ["a", "b"]})
    # option_context restores pandas' options afterwards
    with pd.option_context("display.float_format", None, "styler.format.formatter", None):
        use_house_style()
        for html in (frame._repr_html_(), frame.style.to_html()):
            assert "0.123456" not in html and "0.000000" not in html
            assert ">0.123<" in html and ">0<" in html and ">a<" in html
