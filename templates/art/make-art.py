#!/usr/bin/env python3
"""Draws the default templates' artwork: two signature PNGs and the guilloche
border of the classic template (a one-page A4 landscape PDF). Standard library
only; rerun to regenerate: python3 templates/art/make-art.py"""
import math, struct, zlib, os

here = os.path.dirname(os.path.abspath(__file__))

def png(path, w, h, pixels):
    raw = b"".join(b"\x00" + bytes(pixels[y * w * 4:(y + 1) * w * 4]) for y in range(h))
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(data)

def signature(path, seed):
    w, h = 420, 90
    px = bytearray(w * h * 4)
    ink = (28, 40, 92)
    pts = []
    for i in range(1400):
        t = i / 1400
        x = 20 + t * 370 + 14 * math.sin(t * (19 + seed) * math.pi)
        y = 48 + 24 * math.sin(t * (7 + seed) * math.pi) * math.cos(t * 3 * math.pi) + 9 * math.sin(t * 41 * math.pi)
        pts.append((x, y))
    # a flourish underneath
    for i in range(500):
        t = i / 500
        pts.append((60 + t * 300, 76 - 6 * math.sin(t * math.pi)))
    for (x, y) in pts:
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                d = math.hypot(dx, dy)
                if d > 2.2:
                    continue
                xi, yi = int(x + dx), int(y + dy)
                if 0 <= xi < w and 0 <= yi < h:
                    o = (yi * w + xi) * 4
                    a = int(255 * max(0.0, 1 - d / 2.2))
                    if a > px[o + 3]:
                        px[o:o + 4] = bytes((*ink, a))
    png(path, w, h, px)

def border(path):
    W, H = 841.89, 595.28
    ops = ["q 0.55 0.42 0.16 RG 0.35 w"]
    # guilloche bands along the four edges
    def band(x0, y0, x1, y1, phase):
        length = math.hypot(x1 - x0, y1 - y0)
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        nx, ny = -uy, ux
        for k in range(4):
            pts = []
            n = int(length / 3.5)
            for i in range(n + 1):
                s = i / n * length
                off = 9 * math.sin(s / 11 + k * math.pi / 2 + phase) * math.cos(s / 53)
                pts.append((x0 + ux * s + nx * off, y0 + uy * s + ny * off))
            ops.append("%.2f %.2f m " % pts[0] + " ".join("%.2f %.2f l" % p for p in pts[1:]) + " S")
    m = 26
    band(m, m, W - m, m, 0)
    band(W - m, m, W - m, H - m, 1)
    band(W - m, H - m, m, H - m, 2)
    band(m, H - m, m, m, 3)
    # corner rosettes
    for (cx, cy) in [(m, m), (W - m, m), (W - m, H - m), (m, H - m)]:
        for k in range(6):
            r0 = 14
            pts = [(cx + (r0 + 5 * math.cos(7 * t)) * math.cos(t + k * math.pi / 3) * 0.9,
                    cy + (r0 + 5 * math.cos(7 * t)) * math.sin(t + k * math.pi / 3) * 0.9)
                   for t in [i * 2 * math.pi / 60 for i in range(61)]]
            ops.append("%.2f %.2f m " % pts[0] + " ".join("%.2f %.2f l" % p for p in pts[1:]) + " S")
    # a pale seal behind the centre
    ops.append("0.975 0.962 0.925 rg")
    cx, cy, r = W / 2, H / 2 - 10, 150
    pts = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in [i * 2 * math.pi / 180 for i in range(180)]]
    ops.append("%.2f %.2f m " % pts[0] + " ".join("%.2f %.2f l" % p for p in pts[1:]) + " h f Q")
    content = zlib.compress("\n".join(ops).encode(), 9)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Contents 4 0 R /Resources << >> >>" % (W, H)).encode(),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    open(path, "wb").write(out)

signature(os.path.join(here, "signature-1.png"), 0)
signature(os.path.join(here, "signature-2.png"), 3)
border(os.path.join(here, "classic-border.pdf"))
