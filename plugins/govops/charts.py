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
