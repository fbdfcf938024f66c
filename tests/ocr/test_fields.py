"""Field parsing from recognised lines (no model): merged labels, variants, missing labels."""

import pytest

from ocr.fields import Char, Line, is_card_name, parse_back, parse_front, side_scores


def line(text: str, x0: float, y0: float, x1: float, y1: float, conf: float = 0.99) -> Line:
    n = len(text)
    chars = tuple(Char(c, conf, x0 + (i + 0.5) / n * (x1 - x0)) for i, c in enumerate(text))
    return Line(text, conf, (x0, y0, x1, y1), chars)


FRONT = [
    line("姓名代用名", 0.08, 0.16, 0.30, 0.23),
    line("性别男", 0.08, 0.28, 0.24, 0.35),
    line("民族漢", 0.30, 0.28, 0.42, 0.35),  # traditional form from the recogniser
    line("出生2013年05月06日", 0.08, 0.40, 0.55, 0.47),
    line("住址湖南省长沙市开福区巡道街", 0.08, 0.51, 0.60, 0.58),
    line("幸福小区居民组", 0.19, 0.58, 0.45, 0.65),
    line("公民身份证号码", 0.08, 0.81, 0.30, 0.88),
    line("430512198908131367", 0.35, 0.81, 0.86, 0.88),
    line("3", 0.80, 0.40, 0.82, 0.45),  # a stray digit from the portrait
]


def test_front_fields_and_misprinted_label():
    parsed, flags = parse_front(FRONT)
    got = {k: v.value for k, v in parsed.items()}
    assert got == {
        "name": "代用名", "sex": "男", "ethnicity": "汉", "birth_date": "2013-05-06",
        "address": "湖南省长沙市开福区巡道街幸福小区居民组", "id_number": "430512198908131367",
    }
    assert flags["label_misprinted"]


def test_front_without_labels_uses_the_layout():
    lines = [
        line("李四", 0.19, 0.16, 0.28, 0.23),
        line("女", 0.19, 0.28, 0.22, 0.35),
        line("蒙古", 0.39, 0.28, 0.46, 0.35),
        line("1990年3月7日", 0.19, 0.40, 0.5, 0.47),
        line("北京市东城区景山前街4号", 0.19, 0.51, 0.6, 0.58),
        line("公民身份号码110101199003071244", 0.08, 0.81, 0.86, 0.88),
    ]
    parsed, flags = parse_front(lines)
    got = {k: v.value for k, v in parsed.items()}
    assert got["name"] == "李四" and got["sex"] == "女" and got["ethnicity"] == "蒙古"
    assert got["birth_date"] == "1990-03-07" and got["id_number"] == "110101199003071244"
    assert not flags["label_misprinted"]


def test_back_fields_including_long_term():
    lines = [
        line("中华人民共和国", 0.35, 0.14, 0.85, 0.22),
        line("居民身份证", 0.32, 0.30, 0.88, 0.42),
        line("签发机关长沙市公安局开福分局", 0.17, 0.74, 0.75, 0.80),
        line("有效期限2015.03.01-长期", 0.17, 0.85, 0.70, 0.91),
    ]
    parsed = parse_back(lines)
    assert {k: v.value for k, v in parsed.items()} == {
        "authority": "长沙市公安局开福分局", "valid_from": "2015-03-01", "valid_until": "长期"}
    f, b = side_scores(lines)
    assert b > f


def test_side_scores_front():
    f, b = side_scores(FRONT)
    assert f > b


@pytest.mark.parametrize("text, ok", [
    ("张三", True), ("欧阳娜娜", True), ("阿依古丽·买买提", True), ("王䶮", True),
    ("ÿþÃ(", False), ("张\x00三", False), ("   ", False), ("", False), ("Zhang San", False),
    ("·张三", False), ("张三1", False),
])
def test_is_card_name(text: str, ok: bool) -> None:
    assert is_card_name(text) is ok
