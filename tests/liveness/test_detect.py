import numpy as np

from liveness.detect import DetectorConfig, detect_blinks, detect_mouth, detect_turns, match_in_order

FPS = 15.0


def _t(n):
    return np.arange(n) / FPS


def test_blink_vs_sustained_closure():
    ear = np.full(60, 0.30)
    ear[10:12] = 0.08  # ~130 ms closure: a blink
    ear[30:50] = 0.05  # 1.3 s closure: not a blink
    eps = detect_blinks(_t(60), ear)
    assert len(eps) == 1 and abs(eps[0].start_s - 10 / FPS) < 1e-9 and 0 < eps[0].score <= 1


def test_blink_needs_reopening_and_nan_is_no_face():
    ear = np.full(30, 0.30)
    ear[25:] = 0.05  # closes at the end, never reopens
    assert detect_blinks(_t(30), ear) == []
    ear = np.full(30, 0.30)
    ear[10] = np.nan
    assert detect_blinks(_t(30), ear) == []


def test_mouth_threshold_and_duration():
    m = np.full(60, 0.02)
    m[10:13] = 0.30  # puffed cheeks / speech level: not enough
    m[20:21] = 0.60  # one frame: too short
    m[30:40] = 0.60
    eps = detect_mouth(_t(60), m)
    assert [round(e.start_s * FPS) for e in eps] == [30]


def test_turns_are_relative_to_resting_pose_with_hysteresis():
    yaw = np.full(90, 5.0)  # the subject rests slightly turned
    yaw[10:25] = 5 + 20.0  # image-right turn, 1 s, back to rest
    yaw[40:44] = 5 - 20.0  # too short (0.27 s)
    yaw[60:75] = 5 - 12.0  # not far enough
    yaw[80:] = 5 + 25.0  # never comes back
    eps = detect_turns(_t(90), yaw)
    assert [(e.kind, round(e.start_s * FPS)) for e in eps] == [("turn_image_right", 10)]


def test_match_in_order():
    from liveness.detect import Episode

    def ep(kind, t):
        return Episode(kind, t, t, t, 1.0, 1.0)

    eps = {"blink": [ep("blink", 1.0), ep("blink", 5.0)], "open_mouth": [ep("open_mouth", 3.0)]}
    assert [s for _k, _e, s in match_in_order(["blink", "open_mouth", "blink"], eps)] == ["ok", "ok", "ok"]
    assert [s for _k, _e, s in match_in_order(["open_mouth", "open_mouth"], eps)] == ["ok", "order"]
    assert [s for _k, _e, s in match_in_order(["turn_image_left"], eps)] == ["missing"]
    cfg = DetectorConfig()
    assert cfg.blink_max_s <= 0.5 and cfg.turn_deg > cfg.turn_release_deg
