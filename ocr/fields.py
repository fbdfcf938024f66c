"""Field parsing from recognised text lines on a rectified card (pure, no model).

Coordinates are fractions of the rectified card (0..1 in x and y). Parsing uses the printed layout
(row bands, the value column) as well as the label text, because labels are often merged with the
value, misread or missing.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date

from .ethnicities import ETHNICITY_SET, normalise_ethnicity
from .synthetic import PORTRAIT_BOX

# traditional / variant forms the recogniser may emit -> the simplified form printed on cards
_VARIANTS = str.maketrans({
    "漢": "汉", "別": "别", "華": "华", "國": "国", "區": "区", "號": "号", "長": "长", "縣": "县",
    "門": "门", "東": "东", "發": "发", "關": "关", "機": "机", "鎮": "镇", "鄉": "乡", "廣": "广",
    "蘇": "苏", "陽": "阳", "滿": "满", "維": "维", "爾": "尔", "壯": "壮", "達": "达", "倫": "伦",
    "諾": "诺", "納": "纳", "錫": "锡", "羅": "罗", "烏": "乌", "溫": "温", "瑤": "瑶", "鮮": "鲜",
    "頗": "颇", "獨": "独", "龍": "龙", "薩": "萨", "爾": "尔", "與": "与", "為": "为", "鄭": "郑",
    "陳": "陈", "劉": "刘", "張": "张", "趙": "赵", "吳": "吴", "許": "许", "韓": "韩", "馮": "冯",
    "鄧": "邓", "蔣": "蒋", "蔡": "蔡", "盧": "卢", "塊": "块", "單": "单", "樓": "楼", "棟": "栋",
    "於": "于", "街": "街", "組": "组", "會": "会", "電": "电", "圓": "圆", "灣": "湾", "園": "园",
    "（": "(", "）": ")", "：": ":", "．": ".", "－": "-", "—": "-", "–": "-", "~": "-", "～": "-",
    "ｘ": "X", "x": "X", "Ｘ": "X",
})
_DIGIT_LIKE = str.maketrans({"O": "0", "o": "0", "D": "0", "I": "1", "l": "1", "|": "1", "Z": "2",
                             "S": "5", "B": "8", "g": "9", "×": "X"})

FRONT_LABELS = ("姓名", "性别", "民族", "出生", "住址", "公民身份号码")
BACK_KEYWORDS = ("中华人民共和国", "居民身份证", "签发机关", "有效期限")
MISPRINTED_NUMBER_LABELS = ("公民身份证号码", "公民身份证号", "身份证号码")

VALUE_X = 0.172  # value column of the front (labels end left of it)
NUMBER_X = 0.31
BACK_VALUE_X = 0.355


@dataclass(frozen=True)
class Char:
    ch: str
    conf: float
    x: float  # centre, card fraction


@dataclass(frozen=True)
class Line:
    text: str
    conf: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as card fractions
    chars: tuple[Char, ...] = field(default=())

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2


@dataclass(frozen=True)
class Parsed:
    value: str
    confidence: float
    chars: tuple[Char, ...] = ()
    end: float | None = None  # right edge of the text box the value came from (card fraction)


def normalise_text(text: str) -> str:
    # NFKC folds the full-width digits and letters the recogniser sometimes emits (１ -> 1)
    return unicodedata.normalize("NFKC", text).translate(_VARIANTS).replace(" ", "")


# separators printed in transliterated minority names (e.g. 阿依古丽·买买提)
NAME_SEPARATORS = frozenset("·•・‧")


def is_card_name(text: str) -> bool:
    """Whether `text` could be the 姓名 printed on a resident ID card: Han characters (any CJK
    block, Extension A included) and the middle dot of transliterated names, nothing else.
    A caller's form field decoded from non-UTF-8 bytes arrives as Latin-1 letters ('ÿþÃ('), which
    this refuses, so it becomes an input error rather than a name mismatch put before a reviewer."""
    t = unicodedata.normalize("NFC", text.strip())
    if not t or t[0] in NAME_SEPARATORS or t[-1] in NAME_SEPARATORS:
        return False
    return all(unicodedata.category(c) == "Lo" or c in NAME_SEPARATORS for c in t)


def _chars_of(lines: list[Line], x_min: float = -1.0, x_max: float = 2.0) -> list[Char]:
    out: list[Char] = []
    for ln in sorted(lines, key=lambda l: l.box[0]):
        out.extend(c for c in ln.chars if x_min <= c.x < x_max and not c.ch.isspace())
    return out


def _strip_label(chars: list[Char], labels: tuple[str, ...], x_limit: float) -> list[Char]:
    """Drop a leading label: by its text when it was read, else by position (left of x_limit)."""
    text = "".join(c.ch for c in chars)
    for lab in labels:
        if text.startswith(lab):
            return chars[len(lab):]
    # a misread label: drop characters whose centre lies in the label column
    return [c for c in chars if c.x >= x_limit]


def _parsed(chars: list[Char]) -> Parsed | None:
    if not chars:
        return None
    return Parsed("".join(c.ch for c in chars), min(c.conf for c in chars), tuple(chars))


def is_portrait_area(line: Line) -> bool:
    x0, y0, x1, y1 = PORTRAIT_BOX
    return line.cx > x0 - 0.01 and y0 - 0.02 < line.cy < y1 + 0.02 and line.box[0] > x0 - 0.04


def side_scores(lines: list[Line]) -> tuple[float, float]:
    """(front, back) evidence from the text content alone."""
    joined = "".join(normalise_text(l.text) for l in lines)
    front = sum(1.0 for lab in FRONT_LABELS if lab in joined)
    front += 1.0 if any(lab in joined for lab in MISPRINTED_NUMBER_LABELS) else 0.0
    # exactly 18 characters: a bank card's 16-19 digit number must not look like an ID number
    front += 2.0 if any(re.search(r"(?<![0-9X])\d{17}[\dX](?![0-9X])", normalise_text(l.text).upper()) for l in lines) else 0.0
    front = front if front > 2.0 else 0.0  # the number alone is not a card
    back = sum(1.5 for kw in BACK_KEYWORDS if kw in joined)
    back += 1.5 if re.search(r"\d{4}\.\d{2}\.\d{2}-(\d{4}\.\d{2}\.\d{2}|长期)", joined) else 0.0
    return front, back


def _norm_line(l: Line) -> Line:
    chars = tuple(Char(normalise_text(c.ch) or c.ch, c.conf, c.x) for c in l.chars)
    return Line(normalise_text(l.text), l.conf, l.box, chars)


# what the number line may hold: the digits, the check character, and its label when the detector
# merged the two (printed or misprinted wording)
NUMBER_LINE_CHARS = "0123456789X" + "".join(sorted(set("公民身份号码证")))


def looks_like_number_line(text: str, cy: float) -> bool:
    """The ID number's line: 15+ digit-like characters in the lower part of the portrait side."""
    digits = re.sub(r"[^0-9X]", "", normalise_text(text).upper().translate(_DIGIT_LIKE))
    return len(digits) >= 15 and cy > 0.6


def parse_front(lines: list[Line]) -> tuple[dict[str, Parsed], dict[str, bool]]:
    """Fields of the portrait side, and layout flags (e.g. the misprinted number label)."""
    lines = [_norm_line(l) for l in lines if not is_portrait_area(l)]
    flags = {"label_misprinted": False}
    out: dict[str, Parsed] = {}

    # ID number: the line with 15+ digits, anywhere in the lower part
    num_line = None
    for l in sorted(lines, key=lambda l: -l.cy):
        if looks_like_number_line(l.text, l.cy):
            num_line = l
            break
    if num_line is not None:
        chars = [Char(c.ch.upper().translate(_DIGIT_LIKE), c.conf, c.x) for c in num_line.chars]
        chars = [c for c in chars if c.ch in "0123456789X"]
        # the label may be merged into the same line; keep the trailing run of digits
        p = _parsed(chars)
        if p is not None:
            out["id_number"] = p
        row = [l for l in lines if abs(l.cy - num_line.cy) < 0.06]
        label_text = "".join(re.sub(r"[0-9X]", "", l.text.upper()) for l in row)
        if any(m in label_text for m in MISPRINTED_NUMBER_LABELS):
            flags["label_misprinted"] = True
        bottom = num_line.cy - 0.06
    else:
        bottom = 0.78

    upper = [l for l in lines if l.cy < bottom]
    labelled: dict[str, list[Line]] = {"name": [], "sexeth": [], "birth": [], "address": []}
    for l in upper:
        t = l.text
        if t.startswith(("姓名",)):
            labelled["name"].append(l)
        elif t.startswith(("性别",)) or ("民族" in t):
            labelled["sexeth"].append(l)
        elif t.startswith(("出生",)) or re.search(r"\d{4}年", t):
            labelled["birth"].append(l)
        elif t.startswith(("住址",)):
            labelled["address"].append(l)
    # anchor rows on the recognised labels, fall back to the printed layout bands
    anchors = {k: v[0].cy for k, v in labelled.items() if v}
    default = {"name": 0.17, "sexeth": 0.29, "birth": 0.41, "address": 0.53}
    if anchors:
        shift = sum(anchors[k] - default[k] for k in anchors) / len(anchors)
        for k in default:
            default[k] += shift
    for k, v in anchors.items():
        default[k] = v
    row_of: dict[str, list[Line]] = {k: [] for k in default}
    pitch = 0.12
    for l in upper:
        if l.cy < default["name"] - pitch * 0.7:
            continue  # card header noise above the first row
        if l.cy >= default["address"] - pitch / 2:
            row_of["address"].append(l)
            continue
        best = min(("name", "sexeth", "birth"), key=lambda k: abs(l.cy - default[k]))
        row_of[best].append(l)

    name_chars = _strip_label(_chars_of(row_of["name"]), ("姓名", "姓", "名"), VALUE_X)
    if (p := _parsed(name_chars)) is not None:
        end = next((l.box[2] for l in row_of["name"] if name_chars[-1] in l.chars), None)
        out["name"] = replace(p, end=end)  # the box of the name's last glyph: _has_hole's right edge

    se = _chars_of(row_of["sexeth"])
    text = "".join(c.ch for c in se)
    if "民族" in text:
        i = text.index("民族")
        left, right = se[:i], se[i + 2:]
    elif "族" in text:
        i = text.index("族")
        left, right = se[:i], se[i + 1:]
    else:
        left = [c for c in se if c.x < 0.29]
        right = [c for c in se if c.x >= 0.36]
    left = _strip_label(left, ("性别", "性", "别"), VALUE_X)
    sex = [c for c in left if c.ch in "男女"]
    if sex:
        out["sex"] = Parsed(sex[0].ch, sex[0].conf, (sex[0],))
    elif left:
        out["sex"] = Parsed(left[0].ch, 0.0, (left[0],))
    eth = [c for c in right if c.ch != "民"]
    if (p := _parsed(eth)) is not None:
        out["ethnicity"] = Parsed(normalise_ethnicity(p.value), p.confidence, p.chars)

    bc = _chars_of(row_of["birth"])
    bt = "".join(c.ch for c in bc)
    m = re.search(r"(\d{4})\D{0,2}?(\d{1,2})\D{0,2}?(\d{1,2})", bt.replace("年", " ").replace("月", " ").replace("日", " "))
    nums = re.findall(r"\d+", bt)
    if len(nums) >= 3 and len(nums[0]) == 4:
        try:
            d = date(int(nums[0]), int(nums[1]), int(nums[2]))
            dig = [c for c in bc if c.ch.isdigit()]
            out["birth_date"] = Parsed(d.isoformat(), min((c.conf for c in dig), default=0.0), tuple(dig))
        except ValueError:
            out["birth_date"] = Parsed("", 0.0)
    elif m is None and bc:
        out["birth_date"] = Parsed("", 0.0)

    addr_lines = sorted(row_of["address"], key=lambda l: (round(l.cy / 0.04), l.box[0]))
    addr: list[Char] = []
    for i, l in enumerate(addr_lines):
        cs = [c for c in l.chars if not c.ch.isspace()]
        if i == 0 or l.box[0] < VALUE_X:
            cs = _strip_label(cs, ("住址", "住", "址"), VALUE_X)
        addr.extend(cs)
    if (p := _parsed(addr)) is not None:
        out["address"] = p
    return out, flags


_RANGE = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})-?(长期|(\d{4})\.?(\d{2})\.?(\d{2}))")


def parse_back(lines: list[Line]) -> dict[str, Parsed]:
    lines = [_norm_line(l) for l in lines]
    out: dict[str, Parsed] = {}
    lower = [l for l in lines if l.cy > 0.62]
    validity = [l for l in lower if _RANGE.search(l.text.replace(" ", "")) or "有效" in l.text or "长期" in l.text]
    vcy = max((l.cy for l in validity), default=0.87)
    auth_lines = [l for l in lower if l.cy < vcy - 0.05]
    val_lines = [l for l in lower if l.cy >= vcy - 0.05]
    ac = _strip_label(_chars_of(auth_lines), ("签发机关", "签发机", "发机关"), BACK_VALUE_X)
    if (p := _parsed(ac)) is not None:
        out["authority"] = p
    vc = _strip_label(_chars_of(val_lines), ("有效期限", "有效期", "效期限"), BACK_VALUE_X)
    vt = "".join(c.ch for c in vc)
    m = _RANGE.search(vt)
    if m:
        conf = min((c.conf for c in vc if c.ch.isdigit() or c.ch in "长期"), default=0.0)
        try:
            start = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            out["valid_from"] = Parsed(start.isoformat(), conf)
            if m.group(4) == "长期":
                out["valid_until"] = Parsed("长期", conf)
            else:
                end = date(int(m.group(5)), int(m.group(6)), int(m.group(7)))
                out["valid_until"] = Parsed(end.isoformat(), conf)
        except ValueError:
            out["valid_from"] = Parsed("", 0.0)
    return out
