"""Synthetic resident ID cards of fictitious people, with exact ground truth.

Layout follows the real second-generation card (85.6 x 54 mm), drawn at ~300 dpi (1012 x 638 px).
The people are random and fictitious; ID numbers use real region codes and valid check digits (or a
deliberately wrong one). Portraits are whatever photo the caller supplies.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .ethnicities import ETHNICITIES
from .idnumber import check_digit

CARD_W, CARD_H = 1012, 638
PX_PER_MM = CARD_W / 85.6

# fonts shipped by the Debian packages named in DESIGN.md
_SANS = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
_SANS_BOLD = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")
_OCRB = Path("/usr/share/fonts/opentype/ocr-b/OCRB.otf")
_SC_INDEX = 2  # "Noto Sans CJK SC" inside the collection

# portrait area of the front, as fractions of the card (x0, y0, x1, y1)
PORTRAIT_BOX = (56.0 / 85.6, 6.0 / 54.0, 82.0 / 85.6, 38.0 / 54.0)

_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
_COMPOUND = ["欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "司徒", "令狐", "夏侯", "尉迟", "公孙"]
_GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍鹏辉建国文斌宇浩凯健俊帆帅旭宁欣怡涵梓轩子晨博雅琪思佳嘉瑞睿泽昊天宏志明海峰云飞雪梅红春燕丹凤琳晶莹婷倩颖慧")
_RARE_OK = list("堃喆玥珺淼蕲谯婧嵘")  # uncommon but inside the recogniser's dictionary
_EXT_A = ["䶮", "㛃", "㑇", "䒟", "㻞"]  # CJK Extension A: outside the recogniser's dictionary
_STREETS = ["人民路", "解放路", "建设路", "中山路", "和平街", "新华街", "幸福路", "光明街", "朝阳路",
            "胜利街", "文化路", "长江路", "黄河路", "青年路", "团结街", "振兴路", "工农街", "东风路"]
_VILLAGES = ["幸福小区", "阳光花园", "锦绣家园", "和谐新村", "翠苑小区", "金色港湾", "滨江花园", "桃源村", "柳树屯"]


@dataclass(frozen=True)
class CardPerson:
    name: str
    sex: str
    ethnicity: str
    birth_date: date
    address: str
    id_number: str
    authority: str
    valid_from: date
    valid_until: date | None  # None = 长期


@lru_cache(maxsize=1)
def _regions() -> tuple[tuple[str, str, str, str], ...]:
    """(code, province, prefecture, county) of every current county-level code in stdnum's table."""
    import stdnum

    path = Path(stdnum.__file__).parent / "cn" / "loc.dat"
    out: list[tuple[str, str, str, str]] = []
    province = ""
    pcode = ""
    prefectures: dict[str, str] = {}

    def current(v: str) -> str | None:
        for part in v.split(","):
            if not part.startswith("["):
                return part
            span, name = part[1:].split("]")
            if span.endswith("-"):
                return name
        return None

    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        if not raw.startswith(" "):
            pcode, _, rest = raw.partition(" ")
            province = rest.split('"')[1]
            continue
        sub, _, rest = raw.strip().partition(" ")
        if 'county="' not in rest:
            continue
        name = current(rest.split('"')[1])
        if name is None:
            continue
        if sub.endswith("00"):
            prefectures[pcode + sub[:2]] = name
        elif name != "市辖区" and not name.endswith("辖区"):
            out.append((pcode + sub, province, prefectures.get(pcode + sub[:2], ""), name))
    return tuple(out)


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def validity_years(age_at_issue: int) -> int | None:
    """Span of a card issued at that age: 5 / 10 / 20 years, None = 长期."""
    if age_at_issue < 16:
        return 5
    if age_at_issue <= 25:
        return 10
    if age_at_issue <= 45:
        return 20
    return None


def random_person(
    rng: np.random.Generator, *, valid_number: bool = True, rare_name: bool = False
) -> CardPerson:
    regions = _regions()
    code, province, prefecture, county = regions[int(rng.integers(len(regions)))]
    if rng.random() < 0.12:
        surname = _COMPOUND[int(rng.integers(len(_COMPOUND)))]
    else:
        surname = _SURNAMES[int(rng.integers(len(_SURNAMES)))]
    n_given = 1 if (len(surname) == 2 or rng.random() < 0.3) else 2
    given = []
    for _ in range(n_given):
        pool = _RARE_OK if rng.random() < 0.1 else _GIVEN
        given.append(pool[int(rng.integers(len(pool)))])
    if rare_name:
        given[int(rng.integers(len(given)))] = _EXT_A[int(rng.integers(len(_EXT_A)))]
    name = surname + "".join(given)
    sex = "男" if rng.random() < 0.5 else "女"
    ethnicity = "汉" if rng.random() < 0.4 else ETHNICITIES[int(rng.integers(len(ETHNICITIES)))]
    birth = date.fromordinal(int(rng.integers(date(1945, 1, 1).toordinal(), date(2018, 12, 31).toordinal())))
    # address: one to three lines of ~11 characters
    street = _STREETS[int(rng.integers(len(_STREETS)))] + f"{int(rng.integers(1, 300))}号"
    extra = ""
    r = rng.random()
    if r < 0.45:
        extra = f"{int(rng.integers(1, 30))}栋{int(rng.integers(1, 6))}单元{int(rng.integers(1, 30))}0{int(rng.integers(1, 5))}室"
    elif r < 0.7:
        extra = _VILLAGES[int(rng.integers(len(_VILLAGES)))] + f"{int(rng.integers(1, 40))}号"
    pref = "" if prefecture in ("", province) or prefecture.endswith("辖区") else prefecture
    address = province + pref + county + street + extra
    if len(address) > 33:  # three printed lines of 11
        address = province + pref + county + street
    if len(address) > 33:
        address = province + county + street
    seq = int(rng.integers(0, 100)) * 10 + (int(rng.choice([1, 3, 5, 7, 9])) if sex == "男" else int(rng.choice([0, 2, 4, 6, 8])))
    first17 = f"{code}{birth:%Y%m%d}{seq:03d}"
    cd = check_digit(first17)
    if not valid_number:
        alts = [c for c in "0123456789X" if c != cd]
        cd = alts[int(rng.integers(len(alts)))]
    number = first17 + cd
    # issue date: sometime between the 5th birthday-ish and 2025, chosen so the card is usually valid
    today = date(2026, 6, 1)
    start_min = max(_add_years(birth, 1), date(2005, 1, 1))
    start_max = date(2025, 12, 31)
    if start_min > start_max:
        start_min = start_max
    valid_from = date.fromordinal(int(rng.integers(start_min.toordinal(), start_max.toordinal() + 1)))
    age = valid_from.year - birth.year - ((valid_from.month, valid_from.day) < (birth.month, birth.day))
    span = validity_years(age)
    valid_until = None if span is None else _add_years(valid_from, span)
    while valid_until is not None and valid_until < today:
        # renew: re-issue so the sample card is current (expired cards are made explicitly in tests)
        valid_from = _add_years(valid_from, span)
        age2 = valid_from.year - birth.year - ((valid_from.month, valid_from.day) < (birth.month, birth.day))
        span = validity_years(age2)
        valid_until = None if span is None else _add_years(valid_from, span)
    city = pref or province
    if county.endswith("区"):
        authority = f"{city}公安局{county[:-1] if len(county) > 2 else county}分局"
    else:
        authority = f"{county}公安局"
    return CardPerson(name, sex, ethnicity, birth, address, number, authority, valid_from, valid_until)


def ground_truth(person: CardPerson) -> dict[str, str]:
    return {
        "name": person.name,
        "sex": person.sex,
        "ethnicity": person.ethnicity,
        "birth_date": person.birth_date.isoformat(),
        "address": person.address,
        "id_number": person.id_number,
        "authority": person.authority,
        "valid_from": person.valid_from.isoformat(),
        "valid_until": "长期" if person.valid_until is None else person.valid_until.isoformat(),
    }


@lru_cache(maxsize=32)
def _font(path: str, size: int, index: int = 0) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, index=index)


def _mm(v: float) -> int:
    return int(round(v * PX_PER_MM))


def _background(rng: np.random.Generator | None, tint: tuple[int, int, int]) -> Image.Image:
    """Pale card stock with a faint guilloche so the renders are not flat white."""
    h, w = CARD_H, CARD_W
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.empty((h, w, 3), np.float32)
    for i, t in enumerate(tint):
        base[..., i] = t
    wave = 6 * np.sin(xx / 23.0 + 3 * np.sin(yy / 41.0)) + 4 * np.sin((xx + yy) / 17.0)
    base += wave[..., None] * np.array([0.6, 0.8, 1.0], np.float32)
    grad = (xx / w) * 10 - (yy / h) * 6
    base += grad[..., None]
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


def _rounded_mask() -> Image.Image:
    m = Image.new("L", (CARD_W, CARD_H), 0)
    ImageDraw.Draw(m).rounded_rectangle([0, 0, CARD_W - 1, CARD_H - 1], radius=_mm(3.2), fill=255)
    return m


def _wrap(text: str, per_line: int = 11) -> list[str]:
    return [text[i : i + per_line] for i in range(0, len(text), per_line)]


def _spaced(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font, fill, gap: int) -> None:
    x, y = xy
    for ch in text:
        draw.text((x, y), ch, font=font, fill=fill)
        x += int(font.getlength(ch)) + gap


def _fit_portrait(photo: np.ndarray, box_w: int, box_h: int, face_box: tuple[int, int, int, int] | None) -> np.ndarray:
    """Crop the photo to the portrait aspect around the face (or the upper centre) and resize."""
    h, w = photo.shape[:2]
    aspect = box_w / box_h
    if face_box is not None:
        fx, fy, fw, fh = face_box
        cx, cy = fx + fw / 2, fy + fh / 2
        ch = min(h, fh * 2.1)  # ID photos: the head fills ~half the height
        cw = ch * aspect
        if cw > w:
            cw = w
            ch = cw / aspect
        cy += fh * 0.12
    else:
        cw, ch = (w, w / aspect) if w / h < aspect else (h * aspect, h)
        cx, cy = w / 2, ch / 2 if ch < h else h / 2
    x0 = int(np.clip(cx - cw / 2, 0, max(0, w - cw)))
    y0 = int(np.clip(cy - ch / 2, 0, max(0, h - ch)))
    crop = photo[y0 : y0 + int(ch), x0 : x0 + int(cw)]
    return cv2.resize(crop, (box_w, box_h), interpolation=cv2.INTER_AREA)


def render_front(
    person: CardPerson,
    portrait: np.ndarray | None,
    *,
    face_box: tuple[int, int, int, int] | None = None,
    number_label: str = "公民身份号码",
) -> np.ndarray:
    """The portrait side as a BGR image (CARD_H x CARD_W). `face_box` (x, y, w, h) centres the crop."""
    img = _background(None, (236, 238, 240))
    d = ImageDraw.Draw(img)
    label_font = _font(str(_SANS), _mm(3.0), _SC_INDEX)
    value_font = _font(str(_SANS), _mm(3.5), _SC_INDEX)
    num_font = _font(str(_OCRB), _mm(3.9))
    blue = (40, 110, 170)
    black = (20, 20, 20)
    lx, vx = _mm(7.5), _mm(16.5)

    def row(y_mm: float, label: str, value: str, value_x: int = vx) -> None:
        y = _mm(y_mm)
        _spaced(d, (lx, y + _mm(0.3)), label, label_font, blue, _mm(1.6))
        d.text((value_x, y), value, font=value_font, fill=black)

    row(8.0, "姓名", person.name)
    row(14.5, "性别", person.sex)
    _spaced(d, (_mm(26.0), _mm(14.5) + _mm(0.3)), "民族", label_font, blue, _mm(1.6))
    d.text((_mm(34.0), _mm(14.5)), person.ethnicity, font=value_font, fill=black)
    y = _mm(21.0)
    _spaced(d, (lx, y + _mm(0.3)), "出生", label_font, blue, _mm(1.6))
    b = person.birth_date
    x = vx
    for part, unit in ((str(b.year), "年"), (str(b.month), "月"), (str(b.day), "日")):
        d.text((x, y), part, font=value_font, fill=black)
        x += int(value_font.getlength(part)) + _mm(1.2)
        d.text((x, y + _mm(0.3)), unit, font=label_font, fill=blue)
        x += int(label_font.getlength(unit)) + _mm(1.2)
    lines = _wrap(person.address)
    _spaced(d, (lx, _mm(27.5) + _mm(0.3)), "住址", label_font, blue, _mm(1.6))
    for i, line in enumerate(lines):
        d.text((vx, _mm(27.5 + 4.8 * i)), line, font=value_font, fill=black)
    _spaced(d, (lx, _mm(45.0) + _mm(0.6)), number_label, label_font, blue, _mm(0.5))
    _spaced(d, (_mm(29.0), _mm(44.5)), person.id_number, num_font, black, _mm(0.2))

    px0, py0, px1, py1 = (int(PORTRAIT_BOX[0] * CARD_W), int(PORTRAIT_BOX[1] * CARD_H),
                          int(PORTRAIT_BOX[2] * CARD_W), int(PORTRAIT_BOX[3] * CARD_H))
    if portrait is not None:
        fitted = _fit_portrait(portrait, px1 - px0, py1 - py0, face_box)
        img.paste(Image.fromarray(cv2.cvtColor(fitted, cv2.COLOR_BGR2RGB)), (px0, py0))
    out = Image.new("RGB", (CARD_W, CARD_H), (255, 255, 255))
    out.paste(img, (0, 0), _rounded_mask())
    return cv2.cvtColor(np.asarray(out), cv2.COLOR_RGB2BGR)


def _emblem(d: ImageDraw.ImageDraw, cx: int, cy: int, r: int) -> None:
    red, gold = (200, 30, 30), (240, 200, 60)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=red, width=max(3, r // 9))
    d.ellipse([cx - r * 0.78, cy - r * 0.78, cx + r * 0.78, cy + r * 0.78], fill=red)
    for k, (dx, dy, s) in enumerate(((0, -0.3, 0.28), (-0.42, -0.02, 0.1), (-0.2, -0.5, 0.1), (0.2, -0.5, 0.1), (0.42, -0.02, 0.1))):
        pts = []
        for i in range(10):
            ang = -np.pi / 2 + i * np.pi / 5
            rr = r * s * (1 if i % 2 == 0 else 0.4)
            pts.append((cx + dx * r + rr * np.cos(ang), cy + dy * r + rr * np.sin(ang)))
        d.polygon(pts, fill=gold)
    d.rectangle([cx - r * 0.45, cy + r * 0.2, cx + r * 0.45, cy + r * 0.45], fill=gold)


def render_back(person: CardPerson) -> np.ndarray:
    img = _background(None, (232, 238, 236))
    d = ImageDraw.Draw(img)
    _emblem(d, _mm(14.0), _mm(14.5), _mm(9.0))
    title = _font(str(_SANS_BOLD), _mm(5.2), _SC_INDEX)
    big = _font(str(_SANS_BOLD), _mm(7.0), _SC_INDEX)
    label_font = _font(str(_SANS), _mm(3.0), _SC_INDEX)
    value_font = _font(str(_SANS), _mm(3.4), _SC_INDEX)
    _spaced(d, (_mm(30.0), _mm(8.5)), "中华人民共和国", title, (20, 20, 20), _mm(1.3))
    _spaced(d, (_mm(27.0), _mm(20.0)), "居民身份证", big, (20, 20, 20), _mm(3.5))
    black = (20, 20, 20)
    _spaced(d, (_mm(15.0), _mm(40.5) + _mm(0.3)), "签发机关", label_font, black, _mm(0.8))
    d.text((_mm(32.0), _mm(40.5)), person.authority, font=value_font, fill=black)
    _spaced(d, (_mm(15.0), _mm(46.5) + _mm(0.3)), "有效期限", label_font, black, _mm(0.8))
    until = "长期" if person.valid_until is None else f"{person.valid_until:%Y.%m.%d}"
    d.text((_mm(32.0), _mm(46.5)), f"{person.valid_from:%Y.%m.%d}-{until}", font=value_font, fill=black)
    out = Image.new("RGB", (CARD_W, CARD_H), (255, 255, 255))
    out.paste(img, (0, 0), _rounded_mask())
    return cv2.cvtColor(np.asarray(out), cv2.COLOR_RGB2BGR)


def _clutter(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A table-top background: wood-ish gradient, random shapes, lines and a little text-free noise."""
    base = np.array(rng.integers(40, 160, 3), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, np.pi)
    grain = np.sin((xx * np.cos(ang) + yy * np.sin(ang)) / rng.uniform(6, 30)) * rng.uniform(5, 20)
    img = base[None, None, :] + grain[..., None] + ((xx / w - 0.5) * rng.uniform(-40, 40))[..., None]
    img = img.clip(0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 9))):
        color = tuple(int(c) for c in rng.integers(0, 200, 3))
        kind = rng.integers(3)
        p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        if kind == 0:
            cv2.circle(img, p, int(rng.integers(10, min(w, h) // 6)), color, -1)
        elif kind == 1:
            q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p, q, color, int(rng.integers(2, 10)))
        else:
            q = (p[0] + int(rng.integers(20, w // 5)), p[1] + int(rng.integers(20, h // 5)))
            cv2.rectangle(img, p, q, color, -1)
    return img


def phone_photo(
    card: np.ndarray,
    rng: np.random.Generator,
    *,
    strength: str = "medium",
    size: tuple[int, int] = (1600, 1200),
    quarter_turns: int | None = None,
) -> np.ndarray:
    """The card photographed on a table: perspective, rotation (incl. 90/180/270), blur, noise,
    JPEG, glare and darkness. `strength` is "light", "medium" or "strong"."""
    k = {"light": 0.4, "medium": 1.0, "strong": 1.6}[strength]
    w, h = size
    bg = _clutter(rng, w, h)
    ch, cw = card.shape[:2]
    scale = rng.uniform(0.55, 0.8) * w / cw
    dw, dh = cw * scale, ch * scale
    cx, cy = w / 2 + rng.uniform(-0.08, 0.08) * w, h / 2 + rng.uniform(-0.08, 0.08) * h
    ang = np.deg2rad(rng.uniform(-12, 12) * k)
    corners = np.array([[-dw / 2, -dh / 2], [dw / 2, -dh / 2], [dw / 2, dh / 2], [-dw / 2, dh / 2]])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = corners @ rot.T + [cx, cy]
    pts += rng.uniform(-0.04, 0.04, (4, 2)) * k * dw  # perspective
    src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    m = cv2.getPerspectiveTransform(src, pts.astype(np.float32))
    warped = cv2.warpPerspective(card, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.full((ch, cw), 255, np.uint8), m, (w, h))
    # soft shadow under the card
    shadow = cv2.GaussianBlur(mask, (0, 0), 8).astype(np.float32) / 255 * 0.35
    out = (bg.astype(np.float32) * (1 - shadow[..., None]))
    a = (mask.astype(np.float32) / 255)[..., None]
    out = out * (1 - a) + warped.astype(np.float32) * a
    # lighting: global exposure, a gradient, sometimes dark
    gain = rng.uniform(0.75, 1.1) if rng.random() > 0.2 * k else rng.uniform(0.45, 0.65)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out *= gain * (1 + 0.15 * k * ((xx / w) - 0.5) * rng.choice([-1, 1]))[..., None]
    if rng.random() < 0.35 * k:  # glare spot, kept off most text by chance only
        gx, gy = pts[int(rng.integers(4))] * 0.3 + np.array([cx, cy]) * 0.7
        r = rng.uniform(0.04, 0.09) * w
        spot = np.exp(-(((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * r * r))) * rng.uniform(60, 140)
        out += spot[..., None]
    out += rng.normal(0, 2.5 * k, out.shape)
    img = out.clip(0, 255).astype(np.uint8)
    sigma = rng.uniform(0.2, 1.0) * k
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    turns = int(rng.integers(4)) if quarter_turns is None else quarter_turns
    if turns:
        img = np.ascontiguousarray(np.rot90(img, turns))
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 92))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def encode(image: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode a BGR image (jpeg/png/webp/heic) the way a phone or browser would upload it."""
    rgb = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    buf = io.BytesIO()
    if fmt == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
        rgb.save(buf, format="HEIF", quality=quality)
    else:
        rgb.save(buf, format={"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt], quality=quality)
    return buf.getvalue()
