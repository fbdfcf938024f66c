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


def test_two_blinks_without_full_reopening_between_them():
    # a squinting subject: closed, back above the closing level (not up to the open level), closed
    r = [1.0, 1.0, 0.36, 0.10, 0.09, 0.22, 0.56, 0.66, 0.68, 0.15, 0.12, 0.17, 0.55, 0.74, 0.82, 1.0, 1.0]
    eps = detect_blinks(_t(len(r)), 0.3 * np.array(r))
    assert [round(e.peak_s * FPS) for e in eps] == [4, 10]
    # the same dip pattern that never closes deeply in between parts stays one (too long) closure
    shallow = [1.0, 1.0, 0.6, 0.6, 0.6, 0.6, 0.6, 0.66, 0.68, 0.6, 0.6, 0.6, 0.6, 0.6, 0.9, 1.0, 1.0]
    assert detect_blinks(_t(len(shallow)), 0.3 * np.array(shallow)) == []


def test_blinks_inside_a_squint_that_never_reopens_to_the_baseline():
    # d3's grimace: the eyes sit at ~0.5 of the open baseline for seconds and close twice to ~0.1,
    # reopening to the squint in between: two blinks
    r = [1.0] * 5 + [0.5] * 6 + [0.12, 0.19, 0.39, 0.75, 0.33, 0.11, 0.12, 0.35, 0.47] + [0.5] * 10 + [1.0] * 10
    eps = detect_blinks(_t(len(r)), 0.3 * np.array(r))
    assert [round(e.peak_s * FPS) for e in eps] == [11, 16]
    # a sustained closure that wobbles below 0.4 never reopens to the squint: no blink
    r = [1.0] * 5 + [0.5] * 4 + [0.2, 0.35, 0.2, 0.38, 0.15, 0.3, 0.2, 0.36, 0.1] * 3 + [0.5] * 4 + [1.0] * 5
    assert detect_blinks(_t(len(r)), 0.3 * np.array(r)) == []
    # a deep dip longer than a blink inside the squint is not one either
    r = [1.0] * 5 + [0.5] * 4 + [0.1] * 9 + [0.5] * 4 + [1.0] * 5
    assert detect_blinks(_t(len(r)), 0.3 * np.array(r)) == []


def test_blink_duration_is_interpolated_between_samples():
    # eight closed samples at 15 fps (533 ms counting whole frames) whose neighbours cross the
    # closing level within 2 ms of them: a 0.47 s blink, not a sustained closure
    r = [1.0, 1.0, 0.64] + [0.1] * 6 + [0.64, 1.0, 1.0]
    (e,) = detect_blinks(_t(len(r)), 0.3 * np.array(r))
    assert e.start_s == 2 / FPS and e.end_s == 9 / FPS
    # two more closed samples: 0.6 s, too long for a blink
    r = [1.0, 1.0, 0.64] + [0.1] * 8 + [0.64, 1.0, 1.0]
    assert detect_blinks(_t(len(r)), 0.3 * np.array(r)) == []


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
