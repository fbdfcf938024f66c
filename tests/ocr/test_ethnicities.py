from ocr.ethnicities import ETHNICITIES, is_recognised, normalise_ethnicity


def test_56_groups():
    assert len(set(ETHNICITIES)) == 56
    assert is_recognised("汉") and is_recognised("柯尔克孜") and not is_recognised("穿青人")
    assert normalise_ethnicity("汉族") == "汉"
