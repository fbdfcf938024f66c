from models.masking import mask_address, mask_birth_date, mask_id_number, mask_name, mask_value


def test_masks_match_the_documented_formats():
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("") == ""
    assert mask_id_number("110105194912310015") == "1101**********0015"
    assert mask_address("湖南省长沙市开福区巡道街") == "湖南省长沙市******"
    assert mask_birth_date("1949-12-31") == "****-**-**"


def test_masked_record_does_not_narrow_the_id_number():
    """Shown digits + birth date must leave far more than a handful of candidates."""
    shown = mask_id_number("540229201610315422")
    assert sum(c.isdigit() for c in shown) == 8
    assert mask_value("birth_date", "2016-10-31").count("*") == 8


def test_non_pii_fields_pass_through():
    assert mask_value("sex", "男") == "男"
    assert mask_value("name", None) is None
    assert mask_value("declared_id_number", "11010519491231002X") == "1101**********002X"
