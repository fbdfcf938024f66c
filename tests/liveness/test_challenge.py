from datetime import UTC, datetime, timedelta

import pytest

from liveness import Action, issue_challenge, parse_actions, parse_challenge
from models.errors import InputError
from models.reasons import Reason


def test_issue_challenge_is_random_ordered_and_expires():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    seen = set()
    for _ in range(200):
        c = issue_challenge(now=now)
        assert 2 <= len(c.actions) <= 3
        assert len(set(c.actions)) == len(c.actions)
        assert c.expires_at - c.issued_at == timedelta(seconds=120)
        assert c.issued_at.tzinfo is not None
        seen.add(c.actions)
    assert len(seen) > 20  # many different ordered challenges
    a, b = issue_challenge(), issue_challenge()
    assert a.id != b.id and a.nonce != b.nonce and len(a.nonce) >= 24
    d = a.to_dict()
    assert d["actions"] == [str(x) for x in a.actions] and d["expires_at"].endswith("+00:00")
    assert a.is_expired(a.expires_at) and not a.is_expired(a.issued_at)


def test_issue_challenge_bounds():
    assert len(issue_challenge(n_min=4, n_max=4).actions) == 4
    with pytest.raises(ValueError):
        issue_challenge(n_min=3, n_max=2)
    with pytest.raises(ValueError):
        issue_challenge(now=datetime(2025, 1, 1))


def test_parse_actions():
    assert parse_actions("blink, open_mouth") == (Action.BLINK, Action.OPEN_MOUTH)
    assert parse_actions(["TURN_LEFT", Action.TURN_RIGHT]) == (Action.TURN_LEFT, Action.TURN_RIGHT)
    for junk in ["", "blink,wink", ["blink", 3], 42, ",,", "x" * 1000]:
        with pytest.raises(InputError) as e:
            parse_actions(junk)
        assert e.value.code is Reason.LIVENESS_CHALLENGE_INVALID


def test_parse_challenge_is_one_to_three_distinct_actions():
    assert parse_challenge("blink,open_mouth") == (Action.BLINK, Action.OPEN_MOUTH)
    assert parse_actions("blink,blink") == (Action.BLINK, Action.BLINK)  # the checker may count repeats
    for bad in ["blink,blink", "blink,open_mouth,blink", "blink,open_mouth,turn_left,turn_right", ""]:
        with pytest.raises(InputError) as e:
            parse_challenge(bad)
        assert e.value.code is Reason.LIVENESS_CHALLENGE_INVALID
