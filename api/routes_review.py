"""Wiring to the review queue: open a case on `review`, the decision hook back, signed webhooks,
and the reviewer UI mounted under /review. Each piece is used when review_queue provides it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from .routes_common import ApiContext

log = logging.getLogger("idverify.api")


def wire_review_queue(ctx: ApiContext) -> None:
    pass


def mount_review_ui(app: FastAPI, ctx: ApiContext) -> None:
    pass
