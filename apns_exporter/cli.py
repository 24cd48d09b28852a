"""Command line: Prometheus-style flags, logging setup and the subcommands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from apns_exporter import __version__, config, logs
from apns_exporter.commands import assets as assets_command
from apns_exporter.commands import probe, runtime
from apns_exporter.commands.serve import Listening, serve
from apns_exporter.config.durations import parse_duration
from apns_exporter.creds.credential import check_files
from apns_exporter.errors import (
    ConfigError,
    ConfigIssue,
    LoopUnavailable,
    WebConfigError,
)
from apns_exporter.mock import cli as mock_cli
from apns_exporter.service.exporter import Exporter
from apns_exporter.web.app import parse_listen_address
from apns_exporter.web.webconfig import WebConfigWatcher

log = logging.getLogger("apns_exporter")

DEFAULT_LISTEN = ":10054"
DEFAULT_CONFIG = "apns-exporter.yml"

DESCRIPTION = """\
Prometheus exporter for Apple Push Notification service (APNs).

Keeps one HTTP/2 connection per target open to APNs, sends HTTP/2 PINGs and periodic
canary pushes, and serves connection health, latency, per-reason responses and
credential state on /metrics. Probes run on the exporter's own schedule, not per scrape.
Without a COMMAND, `run` is meant; its flags may stand before or after the word `run`.
"""

EXIT_CODES = """\
exit codes:
  0  success: the exporter stopped on SIGTERM/Ctrl-C, the configuration is valid,
     or every probe succeeded
  1  failure: the configuration or a credential is invalid, a probe failed, or a
     listener could not start
  2  usage error: an unknown or misplaced flag, a bad flag value, or an unknown target
"""


def _duration(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be longer than 0s")
    return seconds


def _shard(value: str) -> tuple[int, int]:
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"{value!r}: expected I/N with 0 <= I < N, e.g. 0/3")
    return int(index), int(count)


# Flags as (name, add_argument keywords), in groups that subcommands share. Each keeps its
# "default" here: _Parser fills it in after parsing, for the subcommand that runs.
Flags = tuple[tuple[str, dict[str, Any]], ...]
LOG_FLAGS: Flags = (
    (
        "--log.level",
        {
            "dest": "log_level",
            "default": "info",
            "choices": list(logs.LEVELS),
            "help": "only log messages at this level or above (default: %(default)s)",
        },
    ),
    (
        "--log.format",
        {
            "dest": "log_format",
            "default": "logfmt",
            "choices": logs.FORMATS,
            "help": "log line format (default: %(default)s)",
        },
    ),
)
WEB_FLAGS: Flags = (
    (
        "--web.listen-address",
        {
            "dest": "listen_address",
            "default": DEFAULT_LISTEN,
            "metavar": "[HOST]:PORT",
            "help": "address to serve metrics and pages on (default: %(default)s, all interfaces)",
        },
    ),
    (
        "--web.config.file",
        {
            "dest": "web_config_file",
            "metavar": "FILE",
            "help": "exporter-toolkit web config (TLS, mTLS, basic auth, headers); re-read on "
            "change",
        },
    ),
    (
        "--web.allowed-host",
        {
            "dest": "web_allowed_hosts",
            "action": "append",
            "default": [],
            "metavar": "NAME",
            "help": "a DNS name browsers may use to POST /-/reload, besides IP addresses, "
            "localhost and the --web.listen-address host (repeatable; guards against DNS "
            "rebinding)",
        },
    ),
    (
        "--web.telemetry-path",
        {
            "dest": "telemetry_path",
            "default": "/metrics",
            "metavar": "PATH",
            "help": "path under which to expose metrics (default: %(default)s)",
        },
    ),
    (
        "--web.runbook-url",
        {
            "dest": "web_runbook_url",
            "metavar": "URL",
            "help": "where your copy of docs/runbook.md is published; the landing page links "
            "each failing target to its section there (unset: the section is named, not linked)",
        },
    ),
)
CONFIG_FILE_FLAG: Flags = (
    (
        "--config.file",
        {
            "dest": "config_file",
            "default": DEFAULT_CONFIG,
            "metavar": "FILE",
            "help": "YAML configuration file (default: %(default)s)",
        },
    ),
)
RUN_FLAGS: Flags = (
    *CONFIG_FILE_FLAG,
    (
        "--config.check",
        {
            "dest": "config_check",
            "default": False,
            "action": "store_true",
            "help": "validate the configuration and its credential files, print every "
            "problem and exit 0 (valid) or 1 (invalid)",
        },
    ),
    (
        "--config.auto-reload-interval",
        {
            "dest": "auto_reload",
            "type": _duration,
            "metavar": "DURATION",
            "help": "also reload when the file's content changes, checked this often "
            "(e.g. 30s; default: off, reload on SIGHUP or POST /-/reload)",
        },
    ),
    (
        "--targets.shard",
        {
            "dest": "shard",
            "type": _shard,
            "metavar": "I/N",
            "help": "probe only this replica's share of the targets, e.g. 0/3 on the first "
            "of three replicas (stable hash of target names)",
        },
    ),
    *WEB_FLAGS,
    *LOG_FLAGS,
    (
        "--runtime.event-loop",
        {
            "dest": "event_loop",
            "default": runtime.DEFAULT_EVENT_LOOP,
            "choices": runtime.EVENT_LOOPS,
            "help": "the event loop to run on; uvloop needs the [uvloop] extra "
            "(default: %(default)s; docs/performance.md compares them)",
        },
    ),
)


class _Parser(argparse.ArgumentParser):
    """The top-level parser; it fills in flag defaults only after parsing.

    The run flags are accepted before and after a subcommand. Were the defaults on the
    sub-parsers, argparse would let them overwrite a value given before the subcommand
    (`--config.file=x run` would read apns-exporter.yml); so flags default to SUPPRESS,
    and the defaults of the subcommand that runs are filled in here.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.defaults: dict[str, dict[str, object]] = {}  # command -> {dest: default}
        self.flag_names: dict[str, str] = {}  # dest -> --flag

    def add_flags(self, command: str, parser: argparse.ArgumentParser, flags: Flags) -> None:
        """Add ``flags`` to ``parser`` (the sub-parser of ``command``, or this parser)."""
        for name, spec in flags:
            kwargs = dict(spec)
            default = kwargs.pop("default", None)
            kwargs["help"] = kwargs["help"].replace("%(default)s", str(default))
            parser.add_argument(name, default=argparse.SUPPRESS, **kwargs)
            self.defaults.setdefault(command, {})[kwargs["dest"]] = default
            self.flag_names[kwargs["dest"]] = name

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        parsed.command = parsed.command or "run"
        accepted = self.defaults.get(parsed.command, {})
        # Flags before the subcommand are the run flags; one the subcommand lacks would be
        # silently ignored, so it is an error instead.
        for dest in vars(parsed):
            if dest in self.flag_names and dest not in accepted:
                self.error(f"{self.flag_names[dest]} does not apply to {parsed.command}")
        for dest, default in accepted.items():
            if not hasattr(parsed, dest):
                setattr(parsed, dest, default)
        return parsed, rest


# Subcommand -> (help, description, epilog, flags); mock-apns adds its own flags too.
COMMANDS: dict[str, tuple[str, str, str | None, Flags]] = {
    "run": (
        "run the exporter (the default when no COMMAND is given)",
        "Run the exporter. These flags may also stand before the word `run`.",
        EXIT_CODES,
        RUN_FLAGS,
    ),
    "probe": (
        "probe one target now and print the result",
        "Run every probe of one target once and print each phase, status, reason and latency.",
        "exit codes:\n  0  every probe succeeded\n  1  a probe failed, or the configuration "
        "is invalid\n  2  usage error: no such target, or a bad flag\n",
        (*CONFIG_FILE_FLAG, *LOG_FLAGS),
    ),
    "demo": (
        "mock APNs + throwaway credentials + exporter, nothing to configure",
        "Start an embedded mock APNs on loopback with throwaway credentials and an exporter "
        "probing it every few seconds; prints the URLs. Ctrl-C stops everything.",
        None,
        (*WEB_FLAGS, *LOG_FLAGS),
    ),
    "mock-apns": (
        "run the mock APNs server alone",
        "Run the mock APNs server (HTTP/2 over TLS, Apple's validation order, faults as data) "
        "to rehearse alerts or test your own push code offline. See docs/mock-apns.md.",
        None,
        LOG_FLAGS,
    ),
    "assets": (
        "write the alert rules, dashboards and Alertmanager example",
        "Write the Prometheus rules (plain and as a PrometheusRule), the Grafana dashboards "
        "and the Alertmanager example into a directory, with your job selector, runbook "
        "address, thresholds and for: durations.",
        None,
        LOG_FLAGS,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-parser per subcommand."""
    parser = _Parser(
        prog="apns-exporter",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # --config.file and mock-apns --config must never be mistaken for each other.
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"apns-exporter {__version__}")
    parser.add_flags("run", parser, RUN_FLAGS)
    # Plain sub-parsers: only the top-level one fills in defaults, after parsing.
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=argparse.ArgumentParser
    )
    for name, (summary, description, epilog, flags) in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if name == "probe":
            sub.add_argument("--target", required=True, metavar="NAME", help="the target to probe")
        if name == "mock-apns":
            mock_cli.add_arguments(sub)
        if name == "assets":
            assets_command.add_arguments(sub)
        parser.add_flags(name, sub, flags)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit code."""
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    command = args.command
    if command == "run":
        return _run(args)
    if command == "probe":
        return _probe(args)
    if command == "demo":
        from apns_exporter.commands import demo

        return _serve_until_signalled(runtime.DEFAULT_EVENT_LOOP, lambda stop: demo.run(args, stop))
    if command == "assets":
        return assets_command.run(args)
    return asyncio.run(mock_cli.run(args))


def _load(path: str) -> config.Config | None:
    try:
        return config.load(path)
    except ConfigError as exc:
        _report(path, exc.issues)
        return None


def _report(path: str, issues: Sequence[ConfigIssue]) -> None:
    for issue in issues:
        print(f"error: {issue}", file=sys.stderr)
    print(f"{path}: configuration is invalid ({len(issues)} problem(s))", file=sys.stderr)


def _probe(args: argparse.Namespace) -> int:
    cfg = _load(args.config_file)
    if cfg is None:
        return 1
    return asyncio.run(probe.run(cfg, args.target))


def _run(args: argparse.Namespace) -> int:
    try:
        # A broken target file does not stop the exporter: it starts without that file's
        # targets and says so (config reload gauge 0); --config.check refuses it.
        fleet = config.load_fleet(args.config_file)
    except ConfigError as exc:
        _report(args.config_file, exc.issues)
        return 1
    cfg = fleet.config
    if args.config_check:
        problems = (*fleet.issues, *_credential_problems(args.config_file, fleet))
        if problems:
            _report(args.config_file, problems)
            return 1
        files = f", {len(fleet.files)} target file(s)" if fleet.files else ""
        print(f"{args.config_file}: configuration is valid ({len(cfg.targets)} target(s){files})")
        return 0
    try:
        listen = parse_listen_address(args.listen_address)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    web_config = None
    if args.web_config_file:
        try:
            web_config = WebConfigWatcher(args.web_config_file)
        except WebConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    exporter = Exporter(cfg, shard=args.shard, config_file=args.config_file, fleet=fleet)
    return _serve_until_signalled(
        args.event_loop,
        lambda stop: serve(
            exporter,
            Listening(
                listen,
                args.telemetry_path,
                web_config=web_config,
                runbook_url=args.web_runbook_url,
                auto_reload_interval=args.auto_reload,
                allowed_hosts=tuple(args.web_allowed_hosts),
            ),
            stop,
        ),
    )


def _credential_problems(path: str, fleet: config.Fleet) -> tuple[ConfigIssue, ...]:
    """Load every file the config names (as a reload does); print the warnings."""
    checked = check_files(path, fleet.config, fleet.origins)
    for warning in checked.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return checked.problems


def _serve_until_signalled(event_loop: str, main: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("running on the %s event loop", event_loop)
        return await main(stop)

    try:
        return runtime.run(runner, event_loop)
    except LoopUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
