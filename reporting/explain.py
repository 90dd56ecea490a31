"""Attention heat maps: each token shaded by the weight the model gave it.

Shading is relative to the review's largest weight, so the deciding words
stand out whatever the review's length; the exact weights are in each
token's tooltip (HTML) and in the top-token list.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import List, Sequence, Tuple

from .serving_client import Explanation

_POSITIVE_RGB = (34, 139, 34)
_NEGATIVE_RGB = (200, 30, 45)


def _color(item: Explanation) -> Tuple[int, int, int]:
    return _POSITIVE_RGB if item.label == "positive" else _NEGATIVE_RGB


def _intensities(item: Explanation) -> List[float]:
    peak = max(item.weights, default=0.0) or 1.0
    return [w / peak for w in item.weights]


def render_html(explanations: Sequence[Explanation]) -> str:
    sections = []
    for item in explanations:
        r, g, b = _color(item)
        spans = []
        for token, weight, intensity in zip(item.tokens, item.weights, _intensities(item)):
            text_color = "#fff" if intensity > 0.6 else "#111"
            spans.append(f'<span class="t" title="{weight:.4f}" style="background:rgba({r},{g},{b},'
                         f'{intensity:.3f});color:{text_color}">{html.escape(token)}</span>')
        top = "".join(f"<li><b>{html.escape(t)}</b> {w:.3f}</li>" for t, w in item.top_tokens(8))
        sections.append(
            f'<section><h2 style="color:rgb({r},{g},{b})">{item.label} '
            f'<small>P(positive) = {item.probability:.3f}</small></h2>'
            f'<p class="review">{" ".join(spans)}</p>'
            f'<details><summary>Most attended tokens</summary><ol>{top}</ol></details></section>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Attention over reviews</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #111; }}
section {{ border-bottom: 1px solid #ddd; padding-bottom: 1rem; }}
.review {{ line-height: 2.1; font-size: 1.05rem; }}
.t {{ padding: 0.1rem 0.2rem; border-radius: 0.2rem; }}
small {{ color: #555; font-weight: normal; }}
</style></head><body>
<h1>What the model attended to</h1>
<p>Each token the model saw is shaded by its attention weight, relative to the review's most
attended token (hover for the exact weight). Green: predicted positive; red: negative.
Long reviews are shown from the last tokens the model kept.</p>
{"".join(sections)}
</body></html>
"""


def write_html(explanations: Sequence[Explanation], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(explanations), encoding="utf-8")


def write_png(explanations: Sequence[Explanation], out: Path, width: int = 1000) -> None:
    """The same heat map as an image (Pillow), one block per review."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=18)
    title_font = ImageFont.load_default(size=22)
    margin, line_height, gap = 20, 30, 6
    draw_probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def layout(item: Explanation):
        x, y, placed = margin, 0, []
        for token, intensity in zip(item.tokens, _intensities(item)):
            w = draw_probe.textlength(token, font=font) + 8
            if x + w > width - margin:
                x, y = margin, y + line_height
            placed.append((token, intensity, x, y, w))
            x += w + gap
        return placed, y + line_height

    blocks = [(item, *layout(item)) for item in explanations]
    height = sum(h + 70 for _, _, h in blocks) + margin
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    top = margin
    for item, placed, block_height in blocks:
        r, g, b = _color(item)
        draw.text((margin, top), f"{item.label}  P(positive) = {item.probability:.3f}",
                  fill=(r, g, b), font=title_font)
        top += 40
        for token, intensity, x, y, w in placed:
            shade = tuple(int(255 - intensity * (255 - c)) for c in (r, g, b))
            draw.rounded_rectangle((x, top + y, x + w, top + y + line_height - 4), radius=4, fill=shade)
            draw.text((x + 4, top + y + 3), token, fill="white" if intensity > 0.6 else "black", font=font)
        top += block_height + 30
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
