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


def plotly_js_name() -> str:
    """The file name of the bundled chart library, versioned so a page never runs another
    release's copy."""
    import plotly

    return f"plotly-{plotly.__version__}.min.js"


def plotly_js() -> str:
    """Plotly's JavaScript as the plotly wheel ships it: pages load it from a file next to
    them, never from a CDN."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def plotly_markup(figure: Any, div_id: str, config: dict[str, Any] | None = None) -> str:
    """A ``<div>`` and the inline script that draws ``figure`` into it, with the Plotly the
    page loads once (``<script src=plotly_js_name()>``); no logo link to plotly.com."""
    import plotly.io as pio

    settings = {"displaylogo": False, "responsive": True, **(config or {})}
    return pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=settings)
