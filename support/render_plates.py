"""Synthetic plate pictures for the regions we have no real pictures of (EU, Brazil).

Numbers are drawn from the region profile's own formats (``plate_regions/*.toml``) in a plain
sans font (OpenCV's Hershey simplex: no TTF renderer is installed), black on white (yellow for
NL, grey for old Brazilian plates), with the blue EU band (a ring of yellow stars and the
country code), German registration seals and the Austrian/Croatian/Slovenian coat of arms
between the groups, and the blue "BRASIL" band on Mercosur plates. Each plate sits in a plain,
noisy scene, a little rotated and blurred. The label is the number only: the band and the
emblems are never part of it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from app.edge.reader.profiles import LETTERS, PlateFormat, get_profile

Image = npt.NDArray[Any]
FONT = cv2.FONT_HERSHEY_SIMPLEX
BLUE = (153, 51, 0)  # BGR, the EU band's blue
YELLOW_STAR = (0, 204, 255)
SHIELD = {"AT": ((40, 40, 200), (255, 255, 255)), "HR": ((40, 40, 200), (255, 255, 255)),
          "SI": ((160, 60, 0), (255, 255, 255))}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plate:
    text: str  # the number as the plate shows it: groups split by " ", "-" or "~" (emblem)
    country: str  # e.g. "DE", "BR"
    band: str  # the EU band's code, "" none
    kind: str = "eu"  # "eu", "br-old", "br-mercosur"

    @property
    def label(self) -> str:
        return "".join(c for c in self.text if c.isalnum())


def fill(fmt: PlateFormat, rng: random.Random) -> str:
    """A random number of this format, with its separators (one its ``valid`` takes)."""
    for _ in range(1000):
        text = _fill_once(fmt, rng)
        if not fmt.valid or re.fullmatch(fmt.valid, re.sub(r"[^A-Z0-9]", "", text)):
            return text
    raise ValueError(f"{fmt.template}: no fill matches {fmt.valid!r}")


def _fill_once(fmt: PlateFormat, rng: random.Random) -> str:
    out = []
    for slot in fmt.template:
        if slot == "9":
            out.append(rng.choice("0123456789"))
        elif slot == "A":
            out.append(rng.choice(fmt.letters))
        elif slot == "L":
            out.append(rng.choice(LETTERS))
        elif slot == "*":
            out.append(rng.choice(fmt.letters + "0123456789"))
        else:
            out.append(slot)
    return "".join(out)


def sample_plates(region: str, count: int, seed: int = 17) -> list[Plate]:
    """``count`` plates of the region's countries in turn, each of a random format."""
    profile = get_profile(region)
    rng = random.Random(seed)
    by_country: dict[str, list[PlateFormat]] = {}
    for f in profile.formats:
        by_country.setdefault(f.country, []).append(f)
    bands = {c: b for b, c in profile.bands.items()}
    countries = sorted(by_country)
    plates = []
    for n in range(count):
        country = countries[n % len(countries)]
        fmt = rng.choice(by_country[country])
        text = fill(fmt, rng)
        if region == "br":
            kind = "br-old" if "-" in fmt.template else "br-mercosur"
            plates.append(Plate(text, country, "", kind))
        else:
            plates.append(Plate(text, country, bands.get(country, ""), "eu"))
    return plates


def _stars(img: Image, cx: int, cy: int, r: int) -> None:
    for k in range(12):
        a = 2 * np.pi * k / 12
        x, y = round(cx + r * np.cos(a)), round(cy + r * np.sin(a))
        cv2.circle(img, (x, y), max(1, r // 6), YELLOW_STAR, -1, cv2.LINE_AA)


def _emblem(img: Image, x: int, h: int, w: int, country: str) -> None:
    """A German seal pair, or a coat-of-arms shield, ``w`` wide at ``x``."""
    cx = x + w // 2
    if country == "DE":
        r = int(w * 0.42)
        cv2.circle(img, (cx, int(h * 0.32)), r, (60, 130, 230), -1, cv2.LINE_AA)  # HU sticker
        cv2.circle(img, (cx, int(h * 0.32)), r // 2, (30, 60, 160), -1, cv2.LINE_AA)
        cv2.circle(img, (cx, int(h * 0.68)), r, (40, 40, 190), -1, cv2.LINE_AA)  # state seal
        cv2.circle(img, (cx, int(h * 0.68)), r // 2, (200, 200, 230), -1, cv2.LINE_AA)
        return
    fg, bg = SHIELD.get(country, ((40, 40, 200), (255, 255, 255)))
    top, bottom = int(h * 0.28), int(h * 0.72)
    pts = np.array(
        [
            [x + 2, top],
            [x + w - 2, top],
            [x + w - 2, int(h * 0.55)],
            [cx, bottom],
            [x + 2, int(h * 0.55)],
        ],
        np.int32,
    )
    cv2.fillPoly(img, [pts], fg, cv2.LINE_AA)
    cv2.rectangle(img, (x + w // 3, top + 4), (x + 2 * w // 3, int(h * 0.5)), bg, -1)


def draw_plate(plate: Plate, height: int = 110) -> Image:
    """The plate alone (BGR), about 4.7:1 like an EU plate."""
    scale, thick = height / 48.0, max(2, round(height / 16))
    char_w = {c: cv2.getTextSize(c, FONT, scale, thick)[0][0] for c in set(plate.text)}
    gap_w = int(height * 0.18)
    emblem_w = int(height * 0.42)
    widths = []
    for c in plate.text:
        widths.append(
            emblem_w
            if c == "~"
            else gap_w
            if c == " "
            else char_w[c] + int(height * 0.05)
            if c != "-"
            else int(height * 0.3)
        )
    band_w = int(height * 0.4) if plate.band else 0
    top_band = int(height * 0.22) if plate.kind == "br-mercosur" else 0
    margin = int(height * 0.15)
    width = band_w + 2 * margin + sum(widths)
    full_h = height + top_band
    bg = {"br-old": (170, 170, 170)}.get(plate.kind, (255, 255, 255))
    if plate.country == "NL":
        bg = (0, 200, 255)
    img = np.full((full_h, width, 3), bg, np.uint8)
    if plate.band:
        cv2.rectangle(img, (0, 0), (band_w, full_h), BLUE, -1)
        _stars(img, band_w // 2, int(height * 0.3), int(band_w * 0.32))
        code_scale = (
            height
            / 48.0
            * (0.45 if len(plate.band) == 1 else 0.3 if len(plate.band) == 2 else 0.22)
        )
        (tw, _), _ = cv2.getTextSize(plate.band, FONT, code_scale, max(1, thick // 3))
        cv2.putText(
            img, plate.band, ((band_w - tw) // 2, int(height * 0.85)), FONT, code_scale,
            (255, 255, 255), max(1, thick // 3), cv2.LINE_AA,
        )  # fmt: skip
    if top_band:
        cv2.rectangle(img, (0, 0), (width, top_band), BLUE, -1)
        s = top_band / 30.0
        (tw, th), _ = cv2.getTextSize("BRASIL", FONT, s, max(1, thick // 3))
        cv2.putText(
            img, "BRASIL", ((width - tw) // 2, (top_band + th) // 2), FONT, s, (255, 255, 255),
            max(1, thick // 3), cv2.LINE_AA,
        )  # fmt: skip
    x = band_w + margin
    base = top_band + int(height * 0.5 + 24 * scale * 0.5)
    for c, w in zip(plate.text, widths, strict=True):
        if c == "~":
            sub = img[top_band:, x : x + w]
            _emblem(sub, 0, height, w, plate.country)
        elif c == "-":
            y = top_band + height // 2
            cv2.line(img, (x + w // 4, y), (x + 3 * w // 4, y), (0, 0, 0), thick, cv2.LINE_AA)
        elif c != " ":
            cv2.putText(img, c, (x, base), FONT, scale, (0, 0, 0), thick, cv2.LINE_AA)
        x += w
    cv2.rectangle(img, (0, 0), (width - 1, full_h - 1), (0, 0, 0), max(2, thick // 2))
    return img


def scene(plate_img: Image, rng: random.Random, size: tuple[int, int] = (640, 480)) -> Image:
    """The plate in a plain noisy scene: placed, a little rotated, scaled and blurred."""
    w, h = size
    grey = rng.randint(60, 180)
    img: Image = np.full((h, w, 3), grey, np.uint8)
    noise = np.random.default_rng(rng.randint(0, 1 << 30)).normal(0, 8, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    target_w = rng.randint(260, 420)
    ph, pw = plate_img.shape[:2]
    small = cv2.resize(
        plate_img, (target_w, round(ph * target_w / pw)), interpolation=cv2.INTER_AREA
    )
    sh, sw = small.shape[:2]
    x0, y0 = rng.randint(10, w - sw - 10), rng.randint(10, h - sh - 10)
    img[y0 : y0 + sh, x0 : x0 + sw] = small
    angle = rng.uniform(-3, 3)
    m = cv2.getRotationMatrix2D((x0 + sw / 2, y0 + sh / 2), angle, 1.0)
    out: Image = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < 0.5:
        out = cv2.GaussianBlur(out, (3, 3), 0)
    return out


def render_folder(folder: Path, region: str, count: int, seed: int = 17) -> str:
    """``count`` scenes into ``folder`` (``images/`` + ``labels.tsv`` as bench/plates.py reads
    them, and ``countries.tsv``: image, band code); returns the countries drawn."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    labels = ["image\tn_lines\ttext"]
    countries = []
    plates = sample_plates(region, count, seed)
    for n, plate in enumerate(plates):
        name = f"{region}-{n:04d}-{plate.country}.png"
        cv2.imwrite(str(folder / "images" / name), scene(draw_plate(plate), rng))
        labels.append(f"{name}\t1\t{plate.label}")
        countries.append(f"{name}\t{plate.band}")
    (folder / "labels.tsv").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (folder / "countries.tsv").write_text("\n".join(countries) + "\n", encoding="utf-8")
    return ",".join(sorted({p.country for p in plates}))
