"""Glyph advance widths for badge text, so a badge's box fits its text ("gamma", "100%").

Measured from DejaVu Sans (the font a badge falls back to where Verdana is missing, and drawn from the
same design) at 11 px: each printable ASCII character's advance width from the font's ``hmtx`` table
(``units × 11 / unitsPerEm``; fontTools, once, not at run time). Any other character counts as the
widest one. The badge also sets ``textLength`` on each text, so a font with other metrics is fitted to
the same width instead of overflowing the box.
"""

from __future__ import annotations

#: advance widths in px at 11 px of the characters 32 (space) … 126 (~), in order
_ASCII_WIDTHS_11PX = (
    3.497, 4.41, 5.06, 9.217, 6.999, 10.452, 8.578, 3.024, 4.292, 4.292, 5.5, 9.217, 3.497, 3.969, 3.497, 3.706,
    6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 6.999, 3.706, 3.706, 9.217, 9.217, 9.217, 5.838,
    11.0, 7.525, 7.546, 7.681, 8.47, 6.95, 6.327, 8.524, 8.271, 3.244, 3.244, 7.213, 6.128, 9.491, 8.229, 8.658,
    6.633, 8.658, 7.643, 6.982, 6.719, 8.051, 7.525, 10.876, 7.536, 6.719, 7.536, 4.292, 3.706, 4.292, 9.217, 5.5,
    5.5, 6.741, 6.982, 6.048, 6.982, 6.768, 3.873, 6.982, 6.972, 3.056, 3.056, 6.37, 3.056, 10.715, 6.972, 6.73,
    6.982, 6.982, 4.522, 5.731, 4.313, 6.972, 6.51, 8.997, 6.51, 6.51, 5.774, 6.999, 3.706, 6.999, 9.217,
)
WIDTHS = {chr(32 + i): w for i, w in enumerate(_ASCII_WIDTHS_11PX)}
#: a character outside the table: as wide as the widest in it
WIDEST = max(_ASCII_WIDTHS_11PX)


def text_width(text: str) -> float:
    """The width in px of ``text`` at 11 px."""
    return sum(WIDTHS.get(ch, WIDEST) for ch in text)
