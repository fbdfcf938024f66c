"""Liveness challenges: the random, ordered actions the server asks the applicant to perform.

Single use and storage of challenges belong to the orchestration (api/); this module only makes
them and parses action lists.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from models.errors import InputError
from models.reasons import Reason


class Action(StrEnum):
    """An action the applicant is asked to perform.

    Direction convention — the SUBJECT'S OWN left/right, as the applicant hears the instruction
    ("turn your head to your left"):

    - ``turn_left``: the subject turns toward their own left. On an UNMIRRORED capture (what a
      phone's front camera records) the nose then points to the IMAGE'S RIGHT
      (labels.json: ``turn_face_image_right``).
    - ``turn_right``: the subject's own right = nose toward the image's left on an unmirrored
      capture (``turn_face_image_left``).
    - ``mirrored=True`` (the client uploads the selfie-preview image, flipped left/right): the nose
      of a ``turn_left`` then points to the image's LEFT, so image directions are swapped before
      matching. Blink and mouth opening are unaffected.
    """

    TURN_LEFT = "turn_left"
    TURN_RIGHT = "turn_right"
    OPEN_MOUTH = "open_mouth"
    BLINK = "blink"


@dataclass(frozen=True)
class Challenge:
    """A server-issued challenge. Times are timezone-aware UTC datetimes."""

    id: str
    nonce: str
    actions: tuple[Action, ...]
    issued_at: datetime
    expires_at: datetime

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "nonce": self.nonce,
            "actions": [str(a) for a in self.actions],
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def issue_challenge(
    *, n_min: int = 2, n_max: int = 3, ttl_s: int = 120, now: datetime | None = None
) -> Challenge:
    """2–3 distinct actions in random order, drawn from a cryptographic source (`secrets`)."""
    pool = list(Action)
    if not (1 <= n_min <= n_max <= len(pool)):
        raise ValueError(f"need 1 <= n_min <= n_max <= {len(pool)}, got {n_min}..{n_max}")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    issued = now if now is not None else datetime.now(UTC)
    if issued.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    issued = issued.astimezone(UTC)
    n = n_min + secrets.randbelow(n_max - n_min + 1)
    rng = secrets.SystemRandom()
    actions = tuple(rng.sample(pool, n))
    return Challenge(
        id=secrets.token_urlsafe(16),
        nonce=secrets.token_urlsafe(24),
        actions=actions,
        issued_at=issued,
        expires_at=issued + timedelta(seconds=ttl_s),
    )


MAX_ACTIONS = 8


def parse_actions(text_or_list: str | Any) -> tuple[Action, ...]:
    """'blink,open_mouth' or ['blink', 'open_mouth'] -> actions; junk -> InputError."""
    if isinstance(text_or_list, str):
        items = [p.strip() for p in text_or_list.split(",")]
    elif isinstance(text_or_list, (list, tuple)):
        items = list(text_or_list)
    else:
        raise InputError(Reason.LIVENESS_CHALLENGE_INVALID, "actions must be a string or a list")
    out: list[Action] = []
    for item in items:
        if isinstance(item, Action):
            out.append(item)
            continue
        if not isinstance(item, str):
            raise InputError(Reason.LIVENESS_CHALLENGE_INVALID, "every action must be a string")
        try:
            out.append(Action(item.strip().lower()))
        except ValueError:
            raise InputError(
                Reason.LIVENESS_CHALLENGE_INVALID,
                f"unknown action {item[:32]!r}; expected one of {', '.join(a.value for a in Action)}",
            ) from None
    if not out:
        raise InputError(Reason.LIVENESS_CHALLENGE_INVALID, "no actions given")
    if len(out) > MAX_ACTIONS:
        raise InputError(Reason.LIVENESS_CHALLENGE_INVALID, f"at most {MAX_ACTIONS} actions")
    return tuple(out)


def parse_challenge(text_or_list: str | Any) -> tuple[Action, ...]:
    """The actions of a challenge a caller states (CLI, batch, the API's development override): the
    rule `issue_challenge` keeps, 1-3 distinct actions. The checker itself accepts repeats (a clip
    with two blinks), so this rule lives here, not in parse_actions."""
    out = parse_actions(text_or_list)
    if not 1 <= len(out) <= 3 or len(set(out)) != len(out):
        raise InputError(Reason.LIVENESS_CHALLENGE_INVALID, "give 1-3 distinct actions")
    return out
