"""Charts for the HTML reports: matplotlib figures embedded as data URIs, so a report is
one self-contained file that opens anywhere."""

from __future__ import annotations

import base64
import io
from typing import Any


def png_data_uri(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def svg_markup(figure: Any) -> str:
    """The figure as inline ``<svg>`` markup with its text kept as text, so the browser draws
    Chinese labels with its own fonts (matplotlib's bundled fonts have no CJK glyphs)."""
    import warnings

    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none"}), warnings.catch_warnings():
        # Layout measures CJK text with a Latin font's metrics; the browser draws the glyphs.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]
