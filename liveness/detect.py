"""Action detection over per-frame signal series (pure numpy state machines, no model).

Every detector works on the subject's own baseline (their open-eye EAR, their resting mouth and
head direction), uses hysteresis (a stronger level to enter an episode than to leave it) and
durations, and returns episodes with start/end/peak times and a 0-1 score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Episode:
    kind: str  # "blink", "open_mouth", "turn_image_left", "turn_image_right"
    start_s: float
    end_s: float
    peak_s: float
    peak: float  # the signal's extreme value within the episode (ratio or degrees)
    score: float  # 0-1, how clearly the episode passes its threshold


@dataclass(frozen=True)
class DetectorConfig:
    # blink: mean EAR below close_ratio x the open-eye baseline, then back above open_ratio
    blink_close_ratio: float = 0.65
    blink_open_ratio: float = 0.80
    blink_min_s: float = 0.0  # a single sampled closed frame counts (fast blinks last ~40-100 ms)
    blink_max_s: float = 0.5  # longer closures are sustained eye closure, not a blink
    # two closures split by a partial reopening count as two blinks only when both close this far
    blink_deep_ratio: float = 0.40
    # a squinting or grimacing subject's eyes may stay below the closing level for seconds; a deep
    # closure inside such a stretch is a blink when, within blink_flank_s on both sides, the eyes
    # reopen to their squint: at least blink_flank_ratio of the baseline and blink_flank_gain x
    # the closure's depth
    blink_flank_s: float = 0.3
    blink_flank_ratio: float = 0.45
    blink_flank_gain: float = 2.5
    baseline_ear_percentile: float = 80.0  # robust to long closures / downcast eyes (<20 % of time)
    # mouth: lips parted by at least mouth_open of the mouth width, and clearly above the resting
    # level; released below mouth_release; held for at least mouth_min_s
    mouth_open: float = 0.40
    mouth_release: float = 0.30
    mouth_over_baseline: float = 0.20
    mouth_min_s: float = 0.2
    # head turn: yaw (relative to the subject's median head direction) past turn_deg, entered and
    # left at turn_release_deg, lasting at least turn_min_s, and coming back toward frontal
    turn_deg: float = 14.0
    turn_release_deg: float = 9.0
    turn_min_s: float = 0.4


def _frame_dt(t: np.ndarray) -> float:
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.0


def ear_baseline(ear: np.ndarray, percentile: float = 80.0) -> float:
    valid = ear[np.isfinite(ear)]
    return float(np.percentile(valid, percentile)) if valid.size else 0.0


def detect_blinks(t: Sequence[float], ear: Sequence[float], cfg: DetectorConfig = DetectorConfig()) -> list[Episode]:
    """Closures of the eyes followed by reopening. NaN = no face in that frame (ends nothing).

    A closed stretch runs from the first sample below `blink_close_ratio` to the next sample back
    above `blink_open_ratio`. Inside it, two deep closures separated by a partial reopening (back
    above the closing level, not up to the open level) are two blinks: a smiling or squinting
    subject blinks twice without their eyes ever reaching the open-eye baseline in between.
    """
    t_arr = np.asarray(t, dtype=np.float64)
    e = np.asarray(ear, dtype=np.float64)
    base = ear_baseline(e, cfg.baseline_ear_percentile)
    if base <= 0:
        return []
    r = e / base
    out: list[Episode] = []
    i, n = 0, len(r)
    while i < n:
        if not (np.isfinite(r[i]) and r[i] < cfg.blink_close_ratio):
            i += 1
            continue
        # must have been open before (not the start of a closed stretch at the clip's start)
        opened_before = any(np.isfinite(r[k]) and r[k] >= cfg.blink_open_ratio for k in range(max(0, i - 10), i))
        j = i
        while j + 1 < n and (not np.isfinite(r[j + 1]) or r[j + 1] < cfg.blink_open_ratio):
            j += 1
        reopened = j + 1 < n and np.isfinite(r[j + 1]) and r[j + 1] >= cfg.blink_open_ratio
        found = []
        if opened_before and reopened:
            for run in _closure_runs(r, i, j, cfg):
                dur = _closure_duration(t_arr, r, run, cfg.blink_close_ratio)
                if cfg.blink_min_s <= dur <= cfg.blink_max_s:
                    found.append(_blink(t_arr, r, run, cfg))
        if not found:
            found = [_blink(t_arr, r, run, cfg) for run in _squint_blinks(t_arr, r, i, j, cfg)]
        out.extend(found)
        i = j + 1
    return out


def _blink(t: np.ndarray, r: np.ndarray, run: list[int], cfg: DetectorConfig) -> Episode:
    k = min(run, key=lambda q: r[q])
    depth = float(r[k])
    score = float(np.clip((cfg.blink_open_ratio - depth) / cfg.blink_open_ratio, 0.0, 1.0))
    return Episode("blink", float(t[run[0]]), float(t[run[-1]]), float(t[k]), depth, score)


def _squint_blinks(t: np.ndarray, r: np.ndarray, i: int, j: int, cfg: DetectorConfig) -> list[list[int]]:
    """Deep, short closures inside the closed stretch i..j with the eyes reopened to the subject's
    squint right before and right after (d3's grimace: squint at ~0.5 of the baseline, two
    closures to ~0.1). A sustained closure has no such reopening around its parts."""
    runs: list[list[int]] = []
    cur: list[int] = []
    for k in range(i, j + 1):
        if np.isfinite(r[k]) and r[k] <= cfg.blink_deep_ratio:
            cur.append(k)
        elif cur:
            runs.append(cur)
            cur = []
    if cur:
        runs.append(cur)
    out = []
    for run in runs:
        if _closure_duration(t, r, run, cfg.blink_deep_ratio) > cfg.blink_max_s:
            continue
        need = max(cfg.blink_flank_ratio, cfg.blink_flank_gain * float(np.nanmin(r[run])))

        def reopened(ks: range) -> bool:
            return any(np.isfinite(r[k]) and r[k] >= need for k in ks)

        a, b = run[0], run[-1]
        before = range(int(np.searchsorted(t, t[a] - cfg.blink_flank_s)), a)
        after = range(b + 1, int(np.searchsorted(t, t[b] + cfg.blink_flank_s, side="right")))
        if reopened(before) and reopened(after):
            out.append(run)
    return out


def _closure_runs(r: np.ndarray, i: int, j: int, cfg: DetectorConfig) -> list[list[int]]:
    """The closed samples of stretch i..j, split at partial reopenings when every part is deep."""
    runs: list[list[int]] = [[]]
    for k in range(i, j + 1):
        if not np.isfinite(r[k]):
            continue
        if r[k] < cfg.blink_close_ratio:
            runs[-1].append(k)
        elif runs[-1]:
            runs.append([])
    runs = [x for x in runs if x]
    if len(runs) > 1 and all(min(r[k] for k in x) <= cfg.blink_deep_ratio for x in runs):
        return runs
    return [[k for x in runs for k in x]]


def _closure_duration(t: np.ndarray, r: np.ndarray, run: list[int], level: float) -> float:
    """Time between the downward and the upward crossing of `level`, interpolated between samples
    (counting whole frames overstates a 15 fps blink by up to 67 ms)."""

    def cross(a: int, b: int, default: float) -> float:
        if not (0 <= a < len(r) and 0 <= b < len(r)) or not (np.isfinite(r[a]) and np.isfinite(r[b])) or r[a] == r[b]:
            return default
        f = float(np.clip((r[a] - level) / (r[a] - r[b]), 0.0, 1.0))
        return float(t[a] + f * (t[b] - t[a]))

    first, last = run[0], run[-1]
    start = cross(first - 1, first, float(t[first]))
    end = cross(last, last + 1, float(t[last]))
    return max(end - start, 0.0)


def detect_mouth(t: Sequence[float], mouth: Sequence[float], cfg: DetectorConfig = DetectorConfig()) -> list[Episode]:
    t_arr = np.asarray(t, dtype=np.float64)
    m = np.asarray(mouth, dtype=np.float64)
    valid = m[np.isfinite(m)]
    if not valid.size:
        return []
    resting = float(np.percentile(valid, 30))
    enter = max(cfg.mouth_open, resting + cfg.mouth_over_baseline)
    leave = max(cfg.mouth_release, resting + 0.5 * cfg.mouth_over_baseline)
    return _episodes(t_arr, m, enter, leave, cfg.mouth_min_s, "open_mouth", require_return=False)


def relative_yaw(yaw: Sequence[float]) -> np.ndarray:
    """Yaw relative to the subject's resting head direction (the median over the capture)."""
    y = np.asarray(yaw, dtype=np.float64)
    valid = y[np.isfinite(y)]
    return y - (float(np.median(valid)) if valid.size else 0.0)


def detect_turns(t: Sequence[float], yaw_deg: Sequence[float], cfg: DetectorConfig = DetectorConfig()) -> list[Episode]:
    """Head turns; yaw > 0 = nose toward the image's right. Kinds are in IMAGE terms."""
    t_arr = np.asarray(t, dtype=np.float64)
    y = relative_yaw(yaw_deg)
    right = _episodes(t_arr, y, cfg.turn_deg, cfg.turn_release_deg, cfg.turn_min_s, "turn_image_right", require_return=True)
    left = _episodes(t_arr, -y, cfg.turn_deg, cfg.turn_release_deg, cfg.turn_min_s, "turn_image_left", require_return=True)
    return sorted(right + left, key=lambda e: e.peak_s)


def _episodes(t: np.ndarray, v: np.ndarray, enter: float, leave: float, min_s: float, kind: str,
              *, require_return: bool) -> list[Episode]:
    """Stretches where v rises above `leave` and reaches `enter` (hysteresis), held >= min_s."""
    out: list[Episode] = []
    dt = _frame_dt(t)
    n = len(v)
    i = 0
    while i < n:
        if not (np.isfinite(v[i]) and v[i] >= leave):
            i += 1
            continue
        j = i
        while j + 1 < n and (not np.isfinite(v[j + 1]) or v[j + 1] >= leave):
            j += 1
        seg = v[i : j + 1]
        k = i + int(np.nanargmax(seg))
        peak = float(v[k])
        returned = j + 1 < n
        dur = t[j] - t[i] + dt
        if peak >= enter and dur >= min_s and (returned or not require_return):
            score = float(np.clip(0.5 + 0.5 * (peak - enter) / max(enter, 1e-6), 0.0, 1.0))
            out.append(Episode(kind, float(t[i]), float(t[j]), float(t[k]), peak, score))
        i = j + 1
    return out


def match_in_order(required: Sequence[str], episodes: dict[str, list[Episode]]) -> list[tuple[str, Episode | None, str]]:
    """For each required kind, in order, the first episode peaking after the previous match.

    Returns (kind, episode or None, status) with status "ok", "missing" (never seen) or
    "order" (seen, but not after the previous action).
    """
    out: list[tuple[str, Episode | None, str]] = []
    after = -np.inf
    for kind in required:
        eps = sorted(episodes.get(kind, []), key=lambda e: e.peak_s)
        nxt = next((e for e in eps if e.peak_s > after), None)
        if nxt is not None:
            out.append((kind, nxt, "ok"))
            after = nxt.peak_s
        elif eps:
            out.append((kind, None, "order"))
        else:
            out.append((kind, None, "missing"))
    return out
