"""Command-line entry points shared by jobs/ (spark-submit) and the `datafirst` command.

Exit codes: 0 success; 1 internal error; 2 bad configuration or input (the message names
the key, file or value); 3 a release failed an audit (nothing published; the message
names the audit and its figures).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from .config import ConfigError, EnvironmentConfig, load_environment
from .lakehouse import Lakehouse, check_release, is_local, write_json

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_AUDIT_FAILED = 3

DEFAULT_ENVIRONMENT = "conf/local.yaml"
log = logging.getLogger("datafirst_spark")


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per line, for schedulers: time, level, logger, message, and a stage
    event's fields (run_id, stage, status, seconds, counts) where the line carries them."""

    EVENT_FIELDS = ("event", "run_id", "stage", "status", "seconds", "counts")

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry |= {k: getattr(record, k) for k in self.EVENT_FIELDS if hasattr(record, k)}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    if log_format == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonLinesFormatter())
    # py4j logs every gateway call at INFO
    logging.getLogger("py4j").setLevel(logging.WARNING)


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default=DEFAULT_ENVIRONMENT, help="environment YAML (default: %(default)s)")
    parser.add_argument("--lakehouse", help="lakehouse root; overrides lakehouse_root in --conf")
    parser.add_argument("--release", required=True, help="release id, e.g. 2025")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="json: one JSON object per line, for schedulers (default: %(default)s)")


def open_lakehouse(env: EnvironmentConfig, override: str | None) -> Lakehouse:
    lakehouse = Lakehouse.at(override or env.lakehouse_root)
    if is_local(lakehouse.root):
        root = Path(lakehouse.root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / ".write-test"
            probe.write_text("ok")
            probe.unlink()
            lakehouse.create_areas()
        except OSError as exc:
            raise ConfigError(f"lakehouse {root}: not writable ({exc.strerror})") from None
    return lakehouse


def run_guarded(action: Callable[[], None]) -> int:
    """Run a job body; turn known failures into one log line and a documented exit code."""
    from .release.audit import AuditFailed

    try:
        action()
    except ConfigError as exc:
        log.error("error: %s", exc)
        return EXIT_BAD_INPUT
    except AuditFailed as exc:
        log.error("error: %s", exc)
        return EXIT_AUDIT_FAILED
    except Exception:
        log.exception("internal error")
        return EXIT_INTERNAL_ERROR
    return EXIT_OK


def generate_synthetic(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="generate_synthetic",
        description="Write synthetic NPD and PNC extracts for a release under landing/ and "
        "their ground truth under truth/.",
    )
    common_arguments(parser)
    parser.add_argument("--scale", help="a scale named in the synthetic config (default: tiny)")
    parser.add_argument("--seed", type=int, help="same seed and scale give the same rows (default: 7)")
    parser.add_argument("--next-year-of", metavar="RELEASE",
                        help="make this release a year on from RELEASE (same people, scale and seed, plus a new "
                        "cohort, new offenders, surname changes and corrections); --scale and --seed come from it")
    parser.add_argument("--format", dest="extract_format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--synthetic-conf", help="synthetic YAML; default: synthetic_config named in --conf")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)

    def body() -> None:
        from .session import spark_run
        from .synthetic.config import load_synthetic_config
        from .synthetic.generate import MANIFEST, GenerationRequest, generate_release

        env = load_environment(args.conf)
        synthetic = load_synthetic_config(args.synthetic_conf or env.resolve(env.synthetic_config))
        from .synthetic.population import PopulationPlan

        lakehouse = open_lakehouse(env, args.lakehouse)
        scale, seed = args.scale or "tiny", 7 if args.seed is None else args.seed
        if args.next_year_of:
            from .synthetic.generate import previous_generation

            prior = previous_generation(lakehouse, check_release(args.next_year_of))
            for name, given, recorded in (("--scale", args.scale, prior["scale"]), ("--seed", args.seed, prior["seed"])):
                if given is not None and given != recorded:
                    raise ConfigError(f"{name} {given}: release {args.next_year_of} was made with {recorded}; "
                                      "a next year's release keeps it (leave the option out)")
            scale, seed = prior["scale"], prior["seed"]
            if check_release(args.release) == args.next_year_of:
                raise ConfigError(f"--next-year-of {args.next_year_of}: must differ from --release")
        PopulationPlan.for_scale(synthetic, synthetic.scale(scale), scale)  # fail before Spark
        request = GenerationRequest(check_release(args.release), scale, seed, args.extract_format,
                                    args.next_year_of)
        with spark_run(env, "generate_synthetic") as run:
            generate_release(run.spark, synthetic, lakehouse, request, run.scratch_dir)
        print(f"{lakehouse.landing(request.release)}/{MANIFEST}")

    return run_guarded(body)


def ingest(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ingest",
        description="Validate and standardise each dataset's extract for a release into "
        "staging/<release>/<dataset>/{records,quarantine}, with counts in _ingest.json.",
    )
    common_arguments(parser)
    parser.add_argument(
        "--dataset",
        action="append",
        help="a spec name in the environment's datasets folder (npd, pnc), a path to a spec "
        "YAML, or 'all' (the default); repeat for several",
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)

    def body() -> None:
        from .datasets import resolve_dataset_specs
        from .ingest import REPORT_FILE, find_extract, ingest_dataset
        from .session import spark_run
        from .standardise import canonical_forenames

        env = load_environment(args.conf)
        specs = resolve_dataset_specs(env, args.dataset or ["all"])
        release = check_release(args.release)
        lakehouse = open_lakehouse(env, args.lakehouse)
        # local extracts are checked before Spark starts; remote ones need its file systems
        found = {spec.dataset: find_extract(None, spec, lakehouse, release) for spec in specs if is_local(lakehouse.root)}
        with spark_run(env, "ingest") as run:
            forename_table = canonical_forenames(run.spark)
            for spec in specs:
                extract = found.get(spec.dataset) or find_extract(run.spark, spec, lakehouse, release)
                ingest_dataset(run.spark, spec, lakehouse, release, run.scratch_dir, extract, forename_table)
                print(lakehouse.staging(release, spec.dataset, REPORT_FILE))

    return run_guarded(body)


def _linkage_arguments(parser: argparse.ArgumentParser) -> None:
    common_arguments(parser)
    parser.add_argument("--linkage", required=True, help="linkage YAML, e.g. conf/linkages/pnc_npd.yaml")
    parser.add_argument("--reingest", action="store_true",
                        help="ingest every dataset again even if the release's records are staged")


def _run_linkage(args: argparse.Namespace, train_only: bool) -> None:
    from .linkage.run import LinkageRequest, check_linkage_inputs, run_linkage
    from .linkage.spec import load_linkage_spec
    from .session import spark_run

    env = load_environment(args.conf)
    spec = load_linkage_spec(args.linkage)
    check_linkage_inputs(spec, env)
    request = LinkageRequest(
        release=check_release(args.release),
        retrain=train_only or getattr(args, "retrain", False),
        model_path=getattr(args, "model", None),
        reingest=args.reingest,
        train_only=train_only,
    )
    if request.model_path and is_local(request.model_path) and not Path(request.model_path).is_file():
        raise ConfigError(f"--model {request.model_path}: file not found")
    lakehouse = open_lakehouse(env, args.lakehouse)
    with spark_run(env, f"linkage-{spec.linkage}") as run:
        report = run_linkage(run.spark, env, spec, lakehouse, request, run.scratch_dir)
    from .linkage.run import REPORT_FILE, linkage_path

    print(linkage_path(lakehouse, report.release, report.linkage, REPORT_FILE))


def run_linkage_job(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run_linkage",
        description="Run one linkage for a release: ingest what is not staged, bound the blocking "
        "rules, train if asked (or if no model exists), predict, cluster, run the deterministic "
        "baseline and, where truth exists, measure quality. Outputs under "
        "staging/<release>/linkage/<linkage>/.",
    )
    _linkage_arguments(parser)
    parser.add_argument("--retrain", action="store_true", help="train a new model even if one exists")
    parser.add_argument("--model", help="score with this saved Splink model JSON instead of the latest one")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    return run_guarded(lambda: _run_linkage(args, train_only=False))


def train_model_job(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="train_model",
        description="Train a linkage's Splink model on a release (lambda from deterministic rules, u by "
        "random sampling, m by EM) and save it under models/<linkage>/<release>/.",
    )
    _linkage_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    return run_guarded(lambda: _run_linkage(args, train_only=True))


def _key_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pseudonym-key-file",
                        help="file holding the research extract's key; default: pseudonym_key_file in --conf, "
                        "else the DATAFIRST_PSEUDONYM_KEY environment variable")
    parser.add_argument("--throwaway-key", action="store_true",
                        help="local demo only: pseudonymise with a random key that is not kept (pseudonyms then "
                        "differ from every other release's)")


def _pseudonym_key(args: argparse.Namespace, env: EnvironmentConfig, lakehouse: Lakehouse) -> bytes:
    from .deidentify import PseudonymKeyError, load_pseudonym_key, throwaway_key

    if args.throwaway_key:
        if not is_local(lakehouse.root):
            raise ConfigError(f"--throwaway-key: only for a local lakehouse (the demo); name a key for {lakehouse.root}")
        log.warning("research extract pseudonyms use a throwaway key: they cannot be reproduced or "
                    "followed to another release (local demo only)")
        return throwaway_key()
    key_file = args.pseudonym_key_file or (str(env.resolve(env.pseudonym_key_file)) if env.pseudonym_key_file else None)
    try:
        return load_pseudonym_key(key_file)
    except PseudonymKeyError as exc:
        raise ConfigError(str(exc)) from None


def publish_release_job(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="publish_release",
        description="Publish a release of a linkage: person IDs carried from the previous release, curated "
        "tables written to staging and audited, then one commit per curated table, the de-identified research "
        "extract, and the registry row last. Runs the linkage first if it has not run for the release. "
        "Exit 3: an audit failed and nothing was published.",
    )
    _linkage_arguments(parser)
    parser.add_argument("--republish", action="store_true",
                        help="publish a release that is already published again, as new versions")
    _key_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)

    def body() -> None:
        from .linkage.run import check_linkage_inputs
        from .linkage.spec import load_linkage_spec
        from .release.publish import REPORT_FILE, PublishRequest, publish_release, release_staging
        from .session import spark_run

        env = load_environment(args.conf)
        spec = load_linkage_spec(args.linkage)
        check_linkage_inputs(spec, env)
        release = check_release(args.release)
        lakehouse = open_lakehouse(env, args.lakehouse)
        key = _pseudonym_key(args, env, lakehouse)  # settled before Spark starts: no key, no work
        request = PublishRequest(release, key, republish=args.republish)
        with spark_run(env, f"publish-{spec.linkage}") as run:
            publish_release(run.spark, env, spec, lakehouse, request, run.scratch_dir)
        print(release_staging(lakehouse, release, REPORT_FILE))

    return run_guarded(body)


DEFAULT_LINKAGE = "conf/linkages/pnc_npd.yaml"  # like --conf's default: from the checkout's root


def annual_refresh_job(argv: Sequence[str] | None = None) -> int:
    from .refresh import STAGES

    parser = argparse.ArgumentParser(
        prog="annual_refresh",
        description="Every stage of a release in one run: " + ", ".join(STAGES) + ". Each stage's status, "
        "seconds and counts go to the run manifest (runs/manifest); run again after a failure, it resumes at the "
        "first stage that has not succeeded. Exit codes: 0 done, 1 internal error, 2 bad configuration or input, "
        "3 an audit failed (nothing published).",
    )
    common_arguments(parser)
    parser.add_argument("--linkage", default=DEFAULT_LINKAGE, help="linkage YAML (default: %(default)s)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--from-stage", choices=STAGES, help="run this stage and every later one")
    chosen.add_argument("--only-stage", choices=STAGES, help="run this stage alone")
    parser.add_argument("--republish", action="store_true",
                        help="publish a release that is already published again, as new versions")
    _key_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level, args.log_format)

    def body() -> None:
        from .datasets import resolve_dataset_specs
        from .ingest import find_extract
        from .linkage.spec import load_linkage_spec
        from .refresh import RefreshRequest, annual_refresh
        from .session import spark_run

        env = load_environment(args.conf)
        spec = load_linkage_spec(args.linkage)
        datasets = resolve_dataset_specs(env, spec.datasets)
        release = check_release(args.release)
        lakehouse = open_lakehouse(env, args.lakehouse)
        key = _pseudonym_key(args, env, lakehouse)
        may_ingest = (args.only_stage or "ingest") == "ingest" and (args.from_stage or "ingest") == "ingest"
        if may_ingest and is_local(lakehouse.root):
            for dataset in datasets:  # a missing or unreadable extract stops the run before Spark starts
                find_extract(None, dataset, lakehouse, release)
        with spark_run(env, f"refresh-{release}") as run:
            request = RefreshRequest(release, run.run_id, key, args.from_stage, args.only_stage, args.republish)
            report = annual_refresh(run.spark, env, spec, lakehouse, request, run.scratch_dir)
            path = lakehouse.staging(release, "refresh", f"{run.run_id}.json")
            write_json(run.spark, path, vars(report))  # write_json stringifies what JSON lacks
        if "report" in report.outcomes.get("qa", {}):
            print(report.outcomes["qa"]["report"])  # the QA report, for a person to open
        print(path)

    return run_guarded(body)


def releases(argv: Sequence[str] | None = None) -> int:
    """List published releases, read a table as a release published it, or diff two releases."""
    parser = argparse.ArgumentParser(prog="datafirst releases", description=releases.__doc__)
    parser.add_argument("--conf", default=DEFAULT_ENVIRONMENT, help="environment YAML (default: %(default)s)")
    parser.add_argument("--lakehouse", help="lakehouse root; overrides lakehouse_root in --conf")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="one JSON line per published release (its latest publication)")
    read = commands.add_parser("read", help="a curated table's rows as RELEASE published them, as JSON lines")
    read.add_argument("--release", required=True)
    read.add_argument("--table", required=True, help="persons, person_links, quarantine, linkage_quality, "
                      "person_id_lineage")
    read.add_argument("--limit", type=int, default=20, help="rows to print; 0 for all (default: %(default)s)")
    diff = commands.add_parser("diff", help="people added, carried, merged, split and retired from one release "
                               "to another, per threshold")
    diff.add_argument("--from", dest="old", required=True)
    diff.add_argument("--to", dest="new", required=True)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)

    def body() -> None:
        from .release.read import diff_releases, list_releases, read_release_table
        from .session import spark_run

        env = load_environment(args.conf)
        lakehouse = open_lakehouse(env, args.lakehouse)
        with spark_run(env, f"releases-{args.command}") as run:
            if args.command == "list":
                for entry in list_releases(run.spark, lakehouse):
                    print(json.dumps({k: entry[k] for k in ("release", "publication", "previous_release",
                                                            "published_at", "model_sha256", "input_rows",
                                                            "figures", "table_versions")}, default=str))
                return
            if args.command == "read":
                df = read_release_table(run.spark, lakehouse, args.table, check_release(args.release))
                rows = df.collect() if args.limit == 0 else df.limit(args.limit).collect()
            else:
                rows = diff_releases(run.spark, lakehouse, check_release(args.old), check_release(args.new)).collect()
            for row in rows:
                print(json.dumps(row.asDict(recursive=True), default=str))

    return run_guarded(body)


def submit(argv: Sequence[str] | None = None) -> int:
    """spark-submit a job with the packages, jars and driver memory its environment needs."""
    parser = argparse.ArgumentParser(
        prog="datafirst submit",
        description="Submit a job under jobs/ to the master named in --conf (or --master), adding Delta's "
        "packages and Splink's jar, and with --ship the package zip (and --env-archive an environment) for the "
        "executors. Arguments after '--' go to the job.",
    )
    parser.add_argument("--conf", default=DEFAULT_ENVIRONMENT, help="environment YAML (default: %(default)s)")
    parser.add_argument("--master", help="local[N], spark://HOST:PORT, yarn or k8s://...; default: the --conf's")
    parser.add_argument("--ship", action="store_true",
                        help="build dist/datafirst_spark-<version>.zip and pass it with --py-files")
    parser.add_argument("--env-archive", help="an environment archive from 'datafirst package --env-archive', "
                        "for executors without the suite's Python dependencies")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("job", help="e.g. jobs/generate_synthetic.py")
    parser.add_argument("job_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    configure_logging()
    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    try:
        env = load_environment(args.conf)
    except ConfigError as exc:
        log.error("error: %s", exc)
        return EXIT_BAD_INPUT
    for option, path in (("job", args.job), ("--env-archive", args.env_archive)):
        if path and not Path(path).is_file():
            log.error("error: %s %s: file not found", option, path)
            return EXIT_BAD_INPUT

    from .submit import REPO_ROOT, build_py_files, spark_submit_command, spark_submit_environment

    py_files = build_py_files(REPO_ROOT / "dist") if args.ship else None
    command = spark_submit_command(env, Path(args.job).resolve(), job_args, master=args.master, py_files=py_files,
                                   env_archive=Path(args.env_archive).resolve() if args.env_archive else None)
    if args.dry_run:
        print(" ".join(command))
        return EXIT_OK
    import subprocess

    return subprocess.call(command, env=spark_submit_environment())


def clerical(argv: Sequence[str] | None = None) -> int:
    """Score a reviewed clerical sample: estimated precision per match-weight band."""
    parser = argparse.ArgumentParser(prog="datafirst clerical", description=clerical.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="one JSON line per band: reviewed, matches, non-matches, unsure, "
                                "precision")
    score.add_argument("decisions", help="the clerical sample CSV with its decision column filled in")
    args = parser.parse_args(argv)
    configure_logging("WARNING")

    def body() -> None:
        from .quality.clerical import score_decisions

        for band in score_decisions(None, args.decisions):
            print(json.dumps(band.as_dict()))

    return run_guarded(body)


def package(argv: Sequence[str] | None = None) -> int:
    """Build what spark-submit ships to a cluster's executors: the package zip, Splink's jar,
    and optionally an environment archive."""
    parser = argparse.ArgumentParser(prog="datafirst package", description=package.__doc__)
    parser.add_argument("--dest", default="dist", help="output folder (default: %(default)s)")
    parser.add_argument("--env-archive", action="store_true",
                        help="also pack a virtualenv with the suite and its dependencies (venv-pack), for "
                        "executors whose machines lack them")
    args = parser.parse_args(argv)
    configure_logging()
    import shutil

    from splink.backends.spark import similarity_jar_location

    from .submit import build_env_archive, build_py_files

    print(build_py_files(args.dest))
    print(shutil.copy(similarity_jar_location(), args.dest))  # for schedulers that name jars by path
    if args.env_archive:
        print(build_env_archive(args.dest))
    return EXIT_OK


COMMANDS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "generate": generate_synthetic,
    "ingest": ingest,
    "link": run_linkage_job,
    "train": train_model_job,
    "publish": publish_release_job,
    "refresh": annual_refresh_job,
    "releases": releases,
    "submit": submit,
    "package": package,
    "clerical": clerical,
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: datafirst {{{','.join(COMMANDS)}}} [options]   (datafirst COMMAND --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
