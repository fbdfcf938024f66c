"""POST /v1/challenges: issue a liveness challenge, stored for single use until it expires."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from liveness.challenge import issue_challenge, parse_challenge
from models.errors import IdvError
from models.reasons import Reason

from .auth import SCOPE_CREATE
from .db import ChallengeRecord, add_challenge
from .routes_common import Caller, Ctx, DbSession
from .schemas import ChallengeOut, ErrorOut

router = APIRouter(tags=["challenges"])

CHALLENGE_DOC = """Issue a liveness challenge: 2–3 actions in random order, a nonce and an expiry.

Show the actions to the applicant in this order, record the capture, then send it to
`POST /v1/verifications` with this `challenge_id` before `expires_at`. A challenge is **single use**:
the first verification that names it and passes the request checks (key, form fields, file types by
content) consumes it, even when its images or video then turn out unusable;
a second use answers 409 `liveness.challenge_used`, an expired one 410 `liveness.challenge_expired`.

**Directions are the applicant's own**, as they hear the instruction "turn your head to your left":
`turn_left` means the subject turns toward *their own* left. On an **unmirrored** capture (what a phone's
front camera records, the default) the nose then points to the **image's right**. If your app uploads the
mirrored selfie-preview image instead, send `mirrored=true` with the verification so the server swaps
image directions; `blink` and `open_mouth` are unaffected.

**Development mode only**: `?actions=open_mouth,blink` fixes the actions, so a recorded test clip
can be sent against a challenge it performs. Production refuses the parameter (403): there the
applicant never knows the actions in advance.
"""


@router.post(
    "/v1/challenges",
    status_code=status.HTTP_201_CREATED,
    response_model=ChallengeOut,
    summary="Issue a liveness challenge",
    description=CHALLENGE_DOC,
    responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
def create_challenge(
    request: Request, ctx: Ctx, caller: Caller, session: DbSession,
    actions: Annotated[str | None, Query(max_length=128, description="development mode only: fixed actions")] = None,
) -> ChallengeOut:
    caller.require(SCOPE_CREATE)
    s = ctx.settings
    ch = issue_challenge(n_min=s.challenge_actions_min, n_max=s.challenge_actions_max, ttl_s=s.challenge_ttl_s)
    if actions is not None:
        if len(request.query_params.getlist("actions")) > 1:
            raise IdvError(Reason.LIVENESS_CHALLENGE_INVALID, "give actions once, comma-separated", status_code=422)
        if s.mode != "development":
            raise IdvError(Reason.AUTH_FORBIDDEN, "fixed challenge actions exist only in development mode",
                           status_code=403)
        fixed = parse_challenge(actions)
        ch = dataclasses.replace(ch, actions=fixed)
    add_challenge(
        session,
        ChallengeRecord(
            id=ch.id,
            client_id=caller.client_id,
            nonce=ch.nonce,
            actions=",".join(a.value for a in ch.actions),
            issued_at=ch.issued_at,
            expires_at=ch.expires_at,
        ),
    )
    return ChallengeOut(
        challenge_id=ch.id,
        nonce=ch.nonce,
        actions=[a.value for a in ch.actions],
        issued_at=ch.issued_at,
        expires_at=ch.expires_at,
        ttl_s=s.challenge_ttl_s,
    )
