"""The 56 officially recognised ethnic groups as printed on the card (without the trailing 族)."""

from __future__ import annotations

ETHNICITIES: tuple[str, ...] = (
    "汉", "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白",
    "土家", "哈尼", "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西",
    "景颇", "柯尔克孜", "土", "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌",
    "普米", "塔吉克", "怒", "乌孜别克", "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔",
    "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
)
ETHNICITY_SET = frozenset(ETHNICITIES)
assert len(ETHNICITY_SET) == 56

# Wording that appears on some real cards for groups outside the 56 (reviewed, never rejected).
KNOWN_UNDETERMINED: frozenset[str] = frozenset({"穿青人", "革家人", "其他", "外国血统"})


def normalise_ethnicity(text: str) -> str:
    """Strip a trailing 族 / 族人 the recogniser may add, keep the group name as printed."""
    t = text.strip()
    if t.endswith("族") and t[:-1] in ETHNICITY_SET:
        return t[:-1]
    return t


def is_recognised(value: str) -> bool:
    return value in ETHNICITY_SET
