from ocr import mask_address, mask_id_number, mask_name


def test_masks():
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_id_number("110101199003071215") == "110101**********15"
    assert mask_address("湖南省长沙市开福区巡道街") == "湖南省长沙市******"
    assert mask_name("") == ""
