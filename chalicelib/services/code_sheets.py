"""Printable sheets: one A4 page per channel code of a store (store, guide, channel, the code, a
short instruction in Chinese), made with reportlab.

reportlab is imported here, on the first sheet a container makes, never at the API's cold start
(app.py reaches this module through _OnFirstUse). Chinese is drawn in reportlab's built-in CID font
STSong-Light (Adobe-GB1): the PDF names the font and the reader supplies the glyphs, so no font file
ships in the Lambda layer.
"""
from __future__ import annotations

import io

from chalicelib.domain import codes as rules
from chalicelib.errors import NotFound
from chalicelib.services import codes
from chalicelib.storage import codes as code_store
from chalicelib.storage import tenancy
from chalicelib.storage.models import Channel, Guide

FONT = "STSong-Light"
# a bulk sheet may wait this long for mp's next per-minute window (the API's timeout bounds it)
PACE_SECONDS = 0.0


def store_sheets(brand_id: str, store_id: str, query: dict | None) -> bytes:
    """The PDF of every channel code of `store_id` for `?app=` (default oa), creating codes that do
    not exist yet (once each, as GET …/code does)."""
    app, _fmt = rules.parse_request({"app": (query or {}).get("app") or "oa"})
    shop = tenancy.get_store(brand_id, store_id)
    if shop is None:
        raise NotFound(f"no store {store_id}", code="unknown_store")
    channels = sorted((c for c in tenancy.list_items(brand_id, Channel, "CHANNEL#") if c.store_id == store_id),
                      key=lambda c: c.scene)
    if not channels:
        raise NotFound(f"store {store_id} has no channel codes", code="no_channel_codes")
    guides = {g.guide_id: g.name for g in tenancy.list_items(brand_id, Guide, "GUIDE#")}
    pages = []
    for channel in channels:
        item = codes.ensure(brand_id, channel.scene, app, pace_seconds=PACE_SECONDS)
        pages.append((rules.sheet_lines(app=app, store_name=shop.name, guide_name=guides.get(channel.guide_id),
                                        scene=channel.scene, source=channel.source), code_store.get_png(item.s3_key)))
    return render(pages)


def render(pages: list[tuple[dict, bytes]]) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, invariant=1)
    width, height = A4
    for lines, png in pages:
        pdf.setFont(FONT, 28)
        pdf.drawCentredString(width / 2, height - 40 * mm, lines["title"])
        pdf.setFont(FONT, 16)
        pdf.drawCentredString(width / 2, height - 55 * mm, lines["guide"])
        pdf.setFont(FONT, 11)
        pdf.drawCentredString(width / 2, height - 64 * mm, lines["channel"])
        side = 120 * mm
        pdf.drawImage(ImageReader(io.BytesIO(png)), (width - side) / 2, height - 70 * mm - side, side, side)
        pdf.setFont(FONT, 16)
        pdf.drawCentredString(width / 2, height - 85 * mm - side, lines["instruction"])
        pdf.showPage()
    pdf.save()
    return out.getvalue()
