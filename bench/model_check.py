"""The long randomised model check of a b2fs mount (tests/model/fsx.py) against a local disk.

Starts a local B2 server, mounts a fresh bucket (plain or ``--encrypted``, with
``--writeback-delay``), runs ``--ops`` operations drawn from ``--seed`` on the
mount and on a reference directory, compares every result, and prints progress,
a table of operations by kind and, on a failure, the difference, the last
operations, the replay command and the saved log.  ``--runs K`` runs seeds
``seed .. seed+K-1`` one after another (each on a new bucket and mount).  Ends every
mount and process it started, also on Ctrl-C or SIGTERM.

    .venv/bin/python bench/model_check.py --ops 100000 --seed 1
    .venv/bin/python bench/model_check.py --ops 20000 --seed 7 --encrypted --writeback-delay 5
    .venv/bin/python bench/model_check.py --seed 7 --ops 3000 --stop-at 2990   # replay a prefix
    .venv/bin/python bench/model_check.py --replay-log model-7.jsonl --shrink  # cut a log down

``--shrink`` (after a failure, or on ``--replay-log``) cuts the failing log down by
delta debugging, each try on a new mount, and writes the result as JSON lines and as
a stand-alone Python reproduction (``--out`` directory, default: the current one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.model

from measure import signals_as_interrupt  # noqa: E402
from mounts import B2fsMount, Session  # noqa: E402

from b2fs.codec import VAULT_NAME, Argon2idParams, create_vault  # noqa: E402
from tests.model.fsx import (  # noqa: E402
    Checker,
    Config,
    Mismatch,
    Op,
    failure_report,
    load_log,
    pool_names,
    summary_table,
)
from tests.model.shrink import python_script, shrink  # noqa: E402

PASSPHRASE = "model check"


class FsxMount(B2fsMount):
    """A b2fs mount the checker can remount (same or fresh cache dir); encrypted with a passphrase."""

    def __init__(self, session: Session, bucket: str, options: dict[str, Any],
                 passphrase: str | None) -> None:  # fmt: skip
        super().__init__(session.server, bucket, session.root("fsx"), options)
        self.passphrase = passphrase
        self.remounts = 0
        session.mounts.append(self)

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.passphrase is not None:
            env["B2FS_PASSPHRASE"] = self.passphrase
        return env

    def remount(self, how: str) -> None:
        if how == "kill":
            self.kill()
        else:
            self.stop()
        self.remounts += 1
        if how == "fresh":
            self.cache_dir = self.root / f"cache-{self.remounts}"
        self.start()

    def pending_uploads(self) -> int:
        try:
            pending = self.status().get("writeback", {}).get("pending", [])
            return sum(p["state"] != "open" for p in pending)  # not those open for writing
        except OSError:
            return 0

    def log_tail(self) -> str:
        return self.log()


def mount_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {"writeback_delay": args.writeback_delay, "block_size": args.block_size}
    if args.encrypted:
        opts["encrypt"] = 1
    if args.large_files:  # large files (copy_part plans) from 1 MiB, on a server that allows them
        opts.update(large_file_threshold=2 * args.block_size, part_size=args.block_size)
    for kv in args.option:
        k, _, v = kv.partition("=")
        opts[k] = v
    return opts


def new_mount(session: Session, args: argparse.Namespace) -> FsxMount:
    bucket, bucket_id = session.new_bucket()
    if args.encrypted:
        blob, _ = create_vault(
            PASSPHRASE, kdf=Argon2idParams(memory_kib=1024, iterations=1, lanes=1)
        )
        session.run(lambda c: c.upload(bucket_id, VAULT_NAME, blob))
    m = FsxMount(session, bucket, mount_options(args), PASSPHRASE if args.encrypted else None)
    m.start()
    return m


def config_of(args: argparse.Namespace, seed: int) -> Config:
    cfg = Config(**{f.name: getattr(args, f.name) for f in fields(Config) if f.name != "seed"})
    cfg.seed = seed
    return cfg


def replay_line(cfg: Config, args: argparse.Namespace, stop_at: int | None = None) -> str:
    mount = ["--writeback-delay", str(args.writeback_delay)]
    if args.encrypted:
        mount.append("--encrypted")
    if args.large_files:
        mount.append("--large-files")
    for kv in args.option:
        mount += ["-o", kv]
    extra = ["--stop-at", str(stop_at)] if stop_at is not None else []
    return " ".join([".venv/bin/python bench/model_check.py", *cfg.cli_args(), *mount, *extra])


class Progress:
    def __init__(self, total: int, every: float) -> None:
        self.total, self.every = total, every
        self.last = time.monotonic()

    def __call__(self, c: Checker) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        n = len(c.log)
        rate = n / max(now - c.started, 1e-9)
        print(f"  {n:>8}/{self.total} ops  {rate:6.0f} ops/s  open handles {len(c.handles)}  "
              f"remounts {c.counts['remount']}", flush=True)  # fmt: skip


def run_one(session: Session, args: argparse.Namespace, seed: int, out: Path) -> bool:
    cfg = config_of(args, seed)
    mount = new_mount(session, args)
    ref = Path(tempfile.mkdtemp(prefix="ref-", dir=session.tmp))
    checker = Checker(cfg, mount, ref, progress=Progress(cfg.ops, args.progress))
    print(f"seed {seed}: {cfg.ops} ops, {'encrypted' if args.encrypted else 'plain'}, "
          f"writeback_delay {args.writeback_delay}, block_size {cfg.block_size}", flush=True)  # fmt: skip
    failure: Mismatch | None = None
    try:
        if args.replay_log:
            checker.replay_ops(load_log(args.replay_log), stop_at=args.stop_at)
        else:
            if args.stop_at is not None:
                cfg.ops = args.stop_at + 1
            checker.run()
    except Mismatch as e:
        failure = e
    finally:
        checker.abandon()
    print(summary_table(checker.summary()))
    if failure is None:
        print(f"seed {seed}: OK ({len(checker.log)} ops, {mount.remounts} remounts)\n", flush=True)
        session.unmount(mount)
        return True
    log_path = out / f"model-{seed}.jsonl"
    checker.save_log(log_path)
    print(failure_report(checker, failure, replay_line(cfg, args, failure.op.index), log_path,
                         mount.log_tail()), flush=True)  # fmt: skip
    session.unmount(mount)
    if args.shrink:
        shrunk(session, args, cfg, checker.log, failure, out)
    return False


def shrunk(session: Session, args: argparse.Namespace, cfg: Config, ops: list[Op],
           failure: Mismatch, out: Path) -> None:  # fmt: skip
    def trial(candidate: list[Op]) -> Mismatch | None:
        m = new_mount(session, args)
        ref = Path(tempfile.mkdtemp(prefix="ref-", dir=session.tmp))
        c = Checker(cfg, m, ref)
        try:
            c.replay_ops(candidate)
            return None
        except Mismatch as e:
            return e
        finally:
            c.abandon()
            session.unmount(m)
            session.mounts.remove(m)

    print(
        f"\nshrinking {len(ops)} ops (signature {failure.signature}, budget {args.shrink_budget}s)"
    )
    best = shrink(ops, failure.signature, trial, budget=args.shrink_budget)
    if len(best) >= len(ops):
        print("could not shrink it (it did not fail again the same way)")
        return
    path = out / f"model-{cfg.seed}-min.jsonl"
    path.write_text("".join(op.to_json() + "\n" for op in best))
    script = out / f"model-{cfg.seed}-min.py"
    script.write_text(python_script(best, pool_names(cfg)))
    print(f"\nshrunk to {len(best)} ops ({path}; stand-alone reproduction: {script}):")
    print("\n".join(op.text() for op in best))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = Config()
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(default, f.name)
        if isinstance(value, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            p.add_argument(flag, type=type(value), default=value)
    p.add_argument(
        "--runs", type=int, default=1, help="seeds SEED .. SEED+RUNS-1, one after another"
    )
    p.add_argument("--encrypted", action="store_true")
    p.add_argument("--writeback-delay", type=float, default=5.0)
    p.add_argument(
        "--large-files",
        action="store_true",
        help="large-file uploads from 2 blocks on (parts copied from the base)",
    )
    p.add_argument("-o", "--option", action="append", default=[], help="another mount option k=v")
    p.add_argument("--stop-at", type=int, help="stop after op N (replay a prefix)")
    p.add_argument("--replay-log", type=Path, help="apply the ops of this JSON-lines log")
    p.add_argument("--shrink", action="store_true", help="cut a failing log down")
    p.add_argument("--shrink-budget", type=float, default=900.0, help="seconds")
    p.add_argument("--out", type=Path, default=Path.cwd(), help="where logs are written")
    p.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with signals_as_interrupt(), tempfile.TemporaryDirectory(prefix="model-check-") as tmp:
        min_part = args.block_size if args.large_files else None
        with Session(Path(tmp), min_part_size=min_part) as session:
            for seed in range(args.seed, args.seed + args.runs):
                results[seed] = run_one(session, args, seed, args.out)
    if len(results) > 1:
        print("seed      result")
        for seed, ok in results.items():
            print(f"{seed:<9} {'ok' if ok else 'FAILED'}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every mount and process this run started is ended", file=sys.stderr)
        sys.exit(130)
