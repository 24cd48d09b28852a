"""The docs held to the code: metric tables, flag table, config keys, example and README claims."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel

from apns_exporter.config import Config
from apns_exporter.mock.pki import generate_signing_key
from apns_exporter.service.metrics import TARGET, Metrics
from apns_exporter.service.series import (
    CONNECTION_FAILURES,
    CREDENTIAL_ERRORS,
    PING_FAILURES,
    REQUEST_ERRORS,
)
from tests.helpers import CLI, add_target, run_cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "examples" / "config.yaml"
TICKED = re.compile(r"`([^`]+)`")


def _rows(text: str, header: str) -> Iterator[list[str]]:
    """The cells of every row of every table whose header row starts with ``header``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(header):
            continue
        # A row after a blank line is not part of the table in Markdown, so stop there.
        for row in lines[i + 2 :]:
            if not row.startswith("|"):
                break
            yield [cell.strip() for cell in row.strip().strip("|").split("|")]


def _sections(text: str) -> dict[str, str]:
    """Each ``#``-heading's text (without the heading), keyed by the heading's words."""
    parts = re.split(r"^#+ (.+)$", text, flags=re.MULTILINE)
    return {
        heading.strip("` "): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def _registry() -> dict[str, tuple[str, frozenset[str]]]:
    """Every metric the exporter defines: exposition name -> (type, labels beyond TARGET)."""
    found = {}
    for family in Metrics(process_metrics=False).families():
        if isinstance(family, MetricWrapperBase):
            described = family.describe()[0]
            name = described.name + ("_total" if described.type == "counter" else "")
            # prometheus_client has no public accessor for a family's label names.
            labels = frozenset(family._labelnames) - set(TARGET)
            found[name] = (described.type, labels)
        else:  # a per-target family of the exposition store
            name = family.name + ("_total" if family.kind == "counter" else "")
            found[name] = (family.kind, frozenset(family.labelnames) - set(TARGET))
    return found


def _preinitialised() -> dict[tuple[str, str], set[str]]:
    """(metric, label) -> the values a new target's series start with, every option on."""
    metrics = Metrics(process_metrics=False)
    add_target(
        metrics,
        "t",
        "production",
        host="api.push.apple.com",
        port=443,
        key=("ABC123DEFG", "DEF123GHIJ"),
        rotate_by=0.0,
        delivery=True,
        broadcast=True,
    )
    values: dict[tuple[str, str], set[str]] = {}
    for family in metrics.registry.collect():
        for s in family.samples:
            name = s.name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
            for label, value in s.labels.items():
                if label not in (*TARGET, "le"):
                    values.setdefault((name, label), set()).add(value)
    return values


def _doc_metrics() -> dict[str, tuple[str, frozenset[str], dict[str, set[str]]]]:
    """docs/metrics.md: name -> (type, labels, label -> the values listed in parentheses)."""
    found = {}
    for name_cell, kind, labels_cell, _ in _rows(METRICS_DOC.read_text(), "| metric |"):
        names = TICKED.findall(name_cell)
        if any("*" in n for n in names):
            continue  # process_* and python_*: prometheus_client's own collectors
        (name,) = names
        assert name not in found, f"docs/metrics.md lists {name} twice"
        listed = {}
        for label, values in re.findall(r"`(\w+)`(?: \(([^)]*)\))?", labels_cell):
            listed[label] = set(TICKED.findall(values))
        found[name] = (kind, frozenset(listed), {k: v for k, v in listed.items() if v})
    return found


def test_metrics_doc_lists_exactly_the_registry() -> None:
    """docs/metrics.md names every metric the exporter defines, with its type and labels."""
    documented = {name: (kind, labels) for name, (kind, labels, _) in _doc_metrics().items()}
    assert documented == _registry()


def test_metrics_doc_value_lists_match_the_preinitialised_series() -> None:
    """Where docs/metrics.md lists a label's values, they are the values series start with."""
    started = _preinitialised()
    for name, (_, _, lists) in _doc_metrics().items():
        for label, values in lists.items():
            if (name, label) in started:
                assert values == started[name, label], (name, label)


def _readme_metric_rows() -> Iterator[tuple[list[str], str]]:
    for names, meaning in _rows(README.read_text(), "| metric |"):
        yield TICKED.findall(names), meaning


def test_readme_metrics_exist_with_their_labels_and_values() -> None:
    """Each metric the README names exists, and any values it lists are all the real ones."""
    registry, started = _registry(), _preinitialised()
    rows = list(_readme_metric_rows())
    assert rows
    for names, meaning in rows:
        listed = set(TICKED.findall(meaning))
        for written in names:
            name, _, labels = written.partition("{")
            pattern = re.compile(re.escape(name).replace(r"\*", ".*"))
            matches = [m for m in registry if pattern.fullmatch(m)]
            assert matches, f"README names {written}, which the exporter does not define"
            for label in filter(None, labels.rstrip("}").split(",")):
                assert all(label in registry[m][1] for m in matches), written
                if listed and (name, label) in started:
                    assert listed == started[name, label], written


def _help_blocks(help_text: str) -> dict[str, str]:
    """argparse --help output: each option's text, whitespace collapsed, keyed by flag."""
    blocks: dict[str, str] = {}
    flag = None
    for line in help_text.splitlines():
        if match := re.match(r"  (--[\w.-]+)", line):
            flag = match.group(1)
            blocks[flag] = ""
        elif not line.startswith("   "):
            flag = None
        if flag:
            blocks[flag] = " ".join((blocks[flag] + " " + line).split())
    return blocks


@pytest.fixture(scope="module")
def cli_help() -> str:
    """``apns-exporter --help`` from the real command line."""
    done = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True)
    return done.stdout


def test_readme_flag_table_matches_help(cli_help: str) -> None:
    """Every flag in the README's table is in --help with the same default, and back."""
    blocks = _help_blocks(cli_help)
    table = {
        TICKED.findall(f)[0]: d.strip("`") for f, d, _ in _rows(README.read_text(), "| flag |")
    }
    assert set(table) == set(blocks) - {"--help"}
    for flag, default in table.items():
        if default:
            assert f"default: {default}" in blocks[flag], (flag, blocks[flag])
        else:
            assert "default:" not in blocks[flag], (flag, blocks[flag])


def test_readme_exit_codes_match_help(cli_help: str) -> None:
    """The README's exit-code table lists the codes --help documents."""
    documented = {c.strip("`") for c, _ in _rows(README.read_text(), "| exit code |")}
    section = cli_help.split("exit codes:")[1]
    assert documented == set(re.findall(r"^  (\d)  ", section, flags=re.MULTILINE))


def _model_sections() -> Iterator[tuple[str, type[BaseModel]]]:
    """(doc heading, model) for the config and every nested model, headings as in the doc."""
    todo: list[tuple[str, type[BaseModel]]] = [("Top level", Config)]
    while todo:
        heading, model = todo.pop()
        yield heading, model
        for name, field in model.model_fields.items():
            key = field.alias or name
            for inner in _models(field.annotation):
                path = key if heading in ("Top level", "targets") else f"{heading}.{key}"
                todo.append((path, inner))


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def test_configuration_doc_keys_match_the_model() -> None:
    """docs/configuration.md has a table per config section listing exactly its keys."""
    sections = _sections(CONFIG_DOC.read_text())
    for heading, model in _model_sections():
        assert heading in sections, f"docs/configuration.md has no section for {heading}"
        documented = {TICKED.findall(r[0])[0] for r in _rows(sections[heading], "| key |")}
        keys = {f.alias or n for n, f in model.model_fields.items()}
        assert documented == keys, heading


def test_markdown_tables_have_no_stray_rows() -> None:
    """No table row in the docs stands after a blank line, where it would render as text."""
    for doc in (README, *sorted((ROOT / "docs").glob("*.md"))):
        lines = doc.read_text().splitlines()
        for i, line in enumerate(lines[1:], start=1):
            if line.startswith("|") and not lines[i - 1].strip():
                header = lines[i + 1] if i + 1 < len(lines) else ""
                assert header.startswith("|--") or header.startswith("|:-"), (doc.name, i + 1)


def test_example_config_passes_the_config_check(tmp_path: Path) -> None:
    """examples/config.yaml passes --config.check once the key files it names exist."""
    example = tmp_path / "config.yaml"
    shutil.copy(EXAMPLE, example)
    for key_file in re.findall(r"^\s*key_file: (AuthKey_\w+\.p8)", EXAMPLE.read_text(), re.M):
        (tmp_path / key_file).write_bytes(generate_signing_key().private_pem)
    done = run_cli("--config.check", f"--config.file={example}")
    assert done.returncode == 0, done.stderr
    assert "configuration is valid" in done.stdout


def test_docs_cite_no_files_outside_the_repository() -> None:
    """Docs, code and tests cite Apple's documentation by title, never private notes."""
    cited = re.compile(r"reference/\S+\.md|\w+-anchors\.md")
    roots = ("apns_exporter", "docs", "tests", "deploy", "benchmarks", "alerts", "examples")
    files = [README, *(p for r in roots for p in (ROOT / r).rglob("*") if p.is_file())]
    offenders = [
        str(p.relative_to(ROOT))
        for p in files
        if p.suffix in (".py", ".md", ".yaml", ".yml", ".json", ".txt", "")
        and p != Path(__file__).resolve()
        and cited.search(p.read_text(errors="replace"))
    ]
    assert offenders == []


def _readme_demo_line() -> str:
    quick_start = _sections(README.read_text())["Quick start"]
    (line,) = re.findall(r"```text\n(apns_up\{.*)\n```", quick_start)
    return line


def test_readme_quotes_what_the_demo_serves() -> None:
    """The apns_up line the README's quick start quotes is what the demo's /metrics serves."""
    quoted = _readme_demo_line()
    proc = subprocess.Popen(
        [*CLI, "demo", "--web.listen-address=127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = next(
            m.group(1) for line in proc.stdout if (m := re.search(r"metrics:\s+(\S+)", line))
        )
        deadline = time.monotonic() + 30
        lines: list[str] = []
        while quoted not in lines and time.monotonic() < deadline:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
            lines = [line for line in text.splitlines() if line.startswith("apns_up")]
            if quoted not in lines:
                time.sleep(0.5)  # polling a real process; the deadline bounds the loop
        assert quoted in lines
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.parametrize(
    ("family", "reasons"),
    [
        ("apns_connection_failures_total", CONNECTION_FAILURES),
        ("apns_canary_request_errors_total", REQUEST_ERRORS),
        ("apns_credential_load_errors_total", CREDENTIAL_ERRORS),
        ("apns_ping_failures_total", tuple(r for r in PING_FAILURES if r != "credential")),
    ],
)
def test_metrics_doc_names_every_reason_its_error_class_raises(
    family: str, reasons: tuple[str, ...]
) -> None:
    """Each error family's row in metrics.md lists every reason the error classes raise."""
    lines = METRICS_DOC.read_text().splitlines()
    row = next(line for line in lines if line.startswith(f"| `{family}`"))
    assert [r for r in reasons if r not in row] == []
