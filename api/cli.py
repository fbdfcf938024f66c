"""The `idverify` command: verify one applicant, list models, serve the API, run the demo.

Exit codes: 0 when a decision was made (approved, rejected or review alike); 2 for unusable input
(missing file, not an image, not a video, no face at all) with a one-line message on stderr; 3 when
the models are missing or altered.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from models import IdvError, ModelError, Reason
from models.errors import describe_unexpected, one_line

EXIT_OK, EXIT_INPUT, EXIT_MODELS = 0, 2, 3


def _add_verify_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", type=Path, help="capture video (MP4/H.264, WebM, MOV)")
    src.add_argument("--frames", type=Path, help="folder of ordered frames (JPEG/PNG, sorted by name)")
    p.add_argument("--challenge", help="the challenged actions in order, e.g. blink,open_mouth,turn_left")
    p.add_argument("--mirrored", action="store_true", help="the capture is mirrored (selfie preview)")
    p.add_argument("--id-front", type=Path, required=True, help="photo of the card's portrait side")
    p.add_argument("--id-back", type=Path, help="photo of the card's emblem side")
    p.add_argument("--selfie-with-card", type=Path, help="selfie of the applicant holding the card")
    p.add_argument("--declared-name")
    p.add_argument("--declared-id-number")
    p.add_argument("--manual", action="store_true", help="manual path: selfie-with-card + front, always review")
    p.add_argument("--policy", type=Path, help="decision policy TOML (default: the packaged policy)")
    p.add_argument("--show-pii", action="store_true", help="print names and ID numbers unmasked")


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idverify", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="verify one applicant from files; prints decision JSON")
    _add_verify_args(p)

    sub.add_parser("models", help="list every model file with its checksum status")

    p = sub.add_parser("serve", help="start the HTTP API and the review UI")
    p.add_argument("--host")
    p.add_argument("--port", type=_int_in(1, 65535))
    p.add_argument("--workers", type=_int_in(1, 256))

    p = sub.add_parser("worker", help="run queued verifications (IDV_QUEUE=celery, IDV_BROKER_URL)")
    p.add_argument("--concurrency", type=_int_in(1, 256), help="worker processes, each loading the models once (default: cores)")

    p = sub.add_parser("demo", help="verify the bundled real examples (needs shared/data) and print decisions")
    p.add_argument("--out", type=Path, help="where to render the demo cards (default: data dir/demo)")

    p = sub.add_parser("render-card", help="render a synthetic ID card (both sides) with a given portrait")
    p.add_argument("--portrait", type=Path, help="face photo for the portrait (optional)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--phone-photo", action="store_true", help="also write phone-photo distorted versions")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("keys", help="manage API keys of client apps")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("create", help="create an API key (printed once; only its hash is stored)")
    k.add_argument("--name", required=True, help="client app name (letters, digits, - and _)")
    k.add_argument("--scopes", default="verifications:write,verifications:read,verifications:delete",
                   help="comma-separated: verifications:write, verifications:read, verifications:delete, pii:read")
    k.add_argument("--webhook-url", help="where final decisions are posted for this client")
    k = keys.add_parser("revoke", help="revoke an API key by its id")
    k.add_argument("key_id")

    p = sub.add_parser("reviewers", help="manage reviewer accounts of the review UI")
    rev = p.add_subparsers(dest="reviewers_command", required=True)
    r = rev.add_parser("add", help="add a reviewer; the password is read from IDV_NEW_PASSWORD or prompted")
    r.add_argument("username")
    r.add_argument("--role", choices=("reviewer", "supervisor"), default="reviewer")

    try:
        from .batch import add_batch_parser  # the batch command lives in its own module
    except ImportError:
        pass
    else:
        add_batch_parser(sub)
    return parser


def _quiet_native_libraries() -> None:
    """Before cv2 loads: OpenCV's and FFmpeg's own stderr lines (`moov atom not found`, `[ WARN:0@0.4]
    ...`) would stand before the one-line error a user should see; the reason code says it. (The
    TF-Lite/absl lines mediapipe prints when a Face Mesh graph starts cannot be turned off this way.)"""
    import warnings

    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")


def _int_in(lo: int, hi: int):
    """argparse type: an integer in [lo, hi], or argparse's own one-line usage error (exit 2)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text[:20]!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}")
        return v
    return parse


def main(argv: list[str] | None = None) -> int:
    _quiet_native_libraries()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    try:
        return _dispatch(args)
    except ValidationError as e:  # a setting (IDV_*) or a file validated with pydantic
        print(f"idverify: {Reason.CONFIG_INVALID}: {one_line(e, env_prefix='IDV_' if e.title == 'Settings' else '')}", file=sys.stderr)
        return EXIT_INPUT
    except ModelError as e:
        print(f"idverify: {e.code}: {e.detail}", file=sys.stderr)
        return EXIT_MODELS
    except IdvError as e:
        print(f"idverify: {e.code}: {e.detail}", file=sys.stderr)
        return EXIT_INPUT
    except OSError as e:  # e.g. an output folder that cannot be written
        print(f"idverify: input.invalid: {e.strerror or e} ({Path(e.filename).name if e.filename else '?'})",
              file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # our bug: one line naming where, never a traceback (it can quote input)
        print(f"idverify: {Reason.INTERNAL_ERROR}: {describe_unexpected(e)}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "models":
        return cmd_models()
    if args.command == "verify":
        return cmd_verify(args)
    if args.command == "worker":
        from .tasks import run_worker

        return run_worker(args.concurrency)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.out)
    if args.command == "render-card":
        return cmd_render_card(args)
    if args.command == "keys":
        return cmd_keys(args)
    if args.command == "reviewers":
        return cmd_reviewers(args)
    if args.command == "batch":
        from .batch import run_batch_command

        return run_batch_command(args)
    raise SystemExit(f"unknown command {args.command}")


def cmd_models() -> int:
    from models import default_registry

    statuses = default_registry().verify_all()
    for s in statuses:
        mark = "ok " if s.ok else "BAD"
        print(f"{mark} {s.name:<20} {s.model_id:<48} {s.package:<22} {s.detail if not s.ok else s.file}")
    return EXIT_OK if all(s.ok for s in statuses) else EXIT_MODELS


def verification_input_from_files(
    settings,
    *,
    id_front: Path,
    video: Path | None = None,
    frames: Path | None = None,
    challenge: str | None = None,
    mirrored: bool = False,
    id_back: Path | None = None,
    selfie_with_card: Path | None = None,
    declared_name: str | None = None,
    declared_id_number: str | None = None,
    manual: bool = False,
):
    """Build a VerificationInput from files, enforcing the settings' limits (CLI verify and batch)."""
    from liveness import load_capture, parse_challenge
    from models.images import read_image_file
    from ocr import is_card_name
    from ocr.idnumber import DECLARED_NUMBER_FORM

    from .pipeline import VerificationInput

    if declared_name is not None and not is_card_name(declared_name):
        raise IdvError(Reason.INPUT_INVALID, "the declared name must be the card's name: Chinese characters and '·' only")
    if declared_id_number is not None and not re.fullmatch(DECLARED_NUMBER_FORM, declared_id_number.strip()):
        raise IdvError(Reason.INPUT_INVALID, "the declared ID number must be 18 characters: 17 digits and a digit or X")

    def img(path: Path | None, what: str):
        if path is None:
            return None
        return read_image_file(path, max_pixels=settings.max_image_pixels, max_bytes=settings.max_image_bytes, what=what)

    capture_path = video or frames
    capture = None
    if capture_path is not None:
        capture = load_capture(
            capture_path,
            max_seconds=settings.max_video_seconds,
            max_frames=settings.max_video_frames,
            max_bytes=settings.max_video_bytes,
        )
    return VerificationInput(
        capture=capture,
        actions=parse_challenge(challenge) if challenge else None,
        mirrored=mirrored,
        id_front=img(id_front, "ID card front"),
        id_back=img(id_back, "ID card back"),
        selfie_with_card=img(selfie_with_card, "selfie with card"),
        declared_name=declared_name,
        declared_id_number=declared_id_number,
        manual=manual,
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from .pipeline import build_engines, run_verification
    from .settings import get_settings

    settings = get_settings()
    if args.policy is not None:
        settings = settings.model_copy(update={"policy_file": args.policy})
    # decode and check every input before spending seconds on loading models
    if not args.manual and (args.video is None and args.frames is None or not args.challenge):
        raise IdvError(Reason.INPUT_MISSING, "give --video or --frames and --challenge (or --manual with --selfie-with-card)")
    if args.manual and args.selfie_with_card is None:
        raise IdvError(Reason.INPUT_MISSING, "--manual needs --selfie-with-card")
    if args.video is not None and args.video.is_dir():
        raise IdvError(Reason.INPUT_WRONG_TYPE, f"--video {args.video} is a folder; give a video file, or --frames for a folder of frames")
    if args.frames is not None and args.frames.is_file():
        raise IdvError(Reason.INPUT_WRONG_TYPE, f"--frames {args.frames} is a file; give a folder of frames, or --video for a video")
    inp = verification_input_from_files(
        settings,
        id_front=args.id_front,
        video=args.video,
        frames=args.frames,
        challenge=args.challenge,
        mirrored=args.mirrored,
        id_back=args.id_back,
        selfie_with_card=args.selfie_with_card,
        declared_name=args.declared_name,
        declared_id_number=args.declared_id_number,
        manual=args.manual,
    )
    engines = build_engines(settings)
    report = run_verification(engines, inp)
    print(json.dumps(report.to_dict(mask_pii=not args.show_pii), ensure_ascii=False, indent=2))
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .http_protocol import JsonErrorH11Protocol
    from .settings import get_settings

    s = get_settings()
    try:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=args.host or s.host,
            port=args.port or s.port,
            workers=args.workers or s.workers,
            log_level="info",
            proxy_headers=bool(s.forwarded_allow_ips),
            forwarded_allow_ips=s.forwarded_allow_ips or None,
            http=JsonErrorH11Protocol,  # unparseable requests get the API's JSON error shape too
        )
    except SystemExit as e:
        # uvicorn logs why (e.g. address already in use) and exits 3 on a failed start-up, which
        # this CLI reserves for a missing or altered model file
        if e.code in (None, 0):
            return EXIT_OK
        print(f"idverify: {Reason.SERVER_START_FAILED}: the server did not start (see the log line above)",
              file=sys.stderr)
        return 1
    return EXIT_OK


def _session_factory():
    """The service's database, migrated to head (the same one `idverify serve` uses)."""
    from review_queue.db import make_engine, make_session_factory, migrate

    from .settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.effective_database_url)
    return make_session_factory(make_engine(settings.effective_database_url))


def cmd_keys(args: argparse.Namespace) -> int:
    from review_queue.db import unit_of_work

    from .auth import create_api_key, revoke_api_key

    factory = _session_factory()
    with unit_of_work(factory) as session:
        if args.keys_command == "create":
            scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
            try:
                key_id, full = create_api_key(session, args.name, scopes, webhook_url=args.webhook_url)
            except ValueError as e:
                print(f"idverify: input.invalid: {e}", file=sys.stderr)
                return EXIT_INPUT
            print(json.dumps({"key_id": key_id, "api_key": full, "scopes": scopes}))
            print("store the api_key now: it is shown only once", file=sys.stderr)
            return EXIT_OK
        if not revoke_api_key(session, args.key_id):
            print(f"idverify: resource.not_found: no API key {args.key_id}", file=sys.stderr)
            return EXIT_INPUT
        return EXIT_OK


def cmd_reviewers(args: argparse.Namespace) -> int:
    import getpass
    import os

    from review_queue.db import unit_of_work
    from review_queue.service import ReviewService

    password = os.environ.get("IDV_NEW_PASSWORD")
    if not password:
        if not sys.stdin.isatty():  # getpass would fall back to reading stdin, then fail at its end
            print("idverify: input.missing: no password: set IDV_NEW_PASSWORD or run on a terminal", file=sys.stderr)
            return EXIT_INPUT
        password = getpass.getpass(f"password for {args.username}: ")
    with unit_of_work(_session_factory()) as session:
        ReviewService(session).create_reviewer(username=args.username, password=password, role=args.role)
    print(f"reviewer {args.username} ({args.role}) created")
    return EXIT_OK


def cmd_render_card(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from models.images import read_image_file
    from ocr.synthetic import ground_truth, phone_photo, random_person, render_back, render_front

    rng = np.random.default_rng(args.seed)
    person = random_person(rng)
    portrait = read_image_file(args.portrait, what="portrait") if args.portrait else None
    args.out.mkdir(parents=True, exist_ok=True)
    front, back = render_front(person, portrait), render_back(person)
    cv2.imwrite(str(args.out / "front.png"), front)
    cv2.imwrite(str(args.out / "back.png"), back)
    if args.phone_photo:
        cv2.imwrite(str(args.out / "front_photo.jpg"), phone_photo(front, rng))
        cv2.imwrite(str(args.out / "back_photo.jpg"), phone_photo(back, rng))
    (args.out / "ground_truth.json").write_text(json.dumps(ground_truth(person), ensure_ascii=False, indent=2))
    print(f"wrote {args.out}/front.png, back.png and ground_truth.json (fictitious person)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
