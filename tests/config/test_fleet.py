"""Target files and discover sources: merged, located, and refused one file at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from apns_exporter import config
from apns_exporter.config.fleet import load_fleet
from apns_exporter.errors import ConfigError
from tests.helpers import KEY_ID, TEAM_ID


def _target(name: str, key: Path, extra: str = "") -> str:
    return (
        f"- name: {name}\n"
        "  environment: production\n"
        "  inventory_only: true\n"
        f"  auth: {{token: {{key_file: {key}, key_id: {KEY_ID}, team_id: {TEAM_ID}}}}}\n" + extra
    )


@pytest.fixture
def key(tmp_path: Path) -> Path:
    """A key file path for targets to name (inventory targets are not loaded here)."""
    path = tmp_path / "AuthKey.p8"
    path.write_text("key")
    return path


def _main(tmp_path: Path, text: str = "target_files: [conf.d]\n") -> Path:
    (tmp_path / "conf.d").mkdir(exist_ok=True)
    path = tmp_path / "main.yml"
    path.write_text(text)
    return path


def test_list_and_mapping_files_merge_with_labels(tmp_path: Path, key: Path) -> None:
    """A list file and a labelled mapping file merge; a target's own labels win over its file's."""
    main = _main(
        tmp_path, "target_files: [conf.d, 'more/**/*.yml']\ntargets:\n" + _target("m", key)
    )
    (tmp_path / "conf.d" / "a.yaml").write_text(_target("a", key))
    (tmp_path / "more" / "deep").mkdir(parents=True)
    labelled = _target("b", key, "  labels: {team: own}\n")
    text = "labels: {team: file, customer: acme}\ntargets:\n" + labelled
    (tmp_path / "more" / "deep" / "b.yml").write_text(text)
    (tmp_path / "conf.d" / "empty.yaml").write_text("# nothing yet\n")
    cfg = config.load(main)
    assert [t.name for t in cfg.targets] == ["m", "a", "b"]
    assert cfg.targets[2].labels == {"team": "own", "customer": "acme"}
    assert cfg.targets[1].labels == {}


def test_inventory_token_target_needs_no_topic(tmp_path: Path, key: Path) -> None:
    """An inventory-only token target loads without a topic; a probed one still needs it."""
    main = _main(tmp_path, "targets:\n" + _target("inv", key))
    assert config.load(main).targets[0].topic is None
    main.write_text("targets:\n" + _target("inv", key).replace("  inventory_only: true\n", ""))
    with pytest.raises(ConfigError, match=r"main.yml:2:3: targets\[0\].topic: required"):
        config.load(main)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ("{target: x}", "label 'target' is reserved"),
        ("{9lives: x}", "'9lives' is not a valid label name"),
        ("{__meta: x}", "'__meta' is not a valid label name"),
        ("{team: 3}", "expected a string"),
    ],
)
def test_bad_labels_are_located(tmp_path: Path, key: Path, labels: str, message: str) -> None:
    """A label name Prometheus would refuse, or shadow, is an error at its file and key."""
    main = _main(tmp_path)
    (tmp_path / "conf.d" / "a.yaml").write_text(_target("a", key, f"  labels: {labels}\n"))
    with pytest.raises(ConfigError) as caught:
        config.load(main)
    (issue,) = caught.value.issues
    assert str(issue).startswith(f"{tmp_path / 'conf.d' / 'a.yaml'}:5:")
    assert "[0].labels" in str(issue)
    assert message in str(issue)


def test_a_file_that_is_not_a_list_says_what_it_should_be(tmp_path: Path) -> None:
    """A target file holding a string is refused with one located line saying what to write."""
    main = _main(tmp_path)
    (tmp_path / "conf.d" / "a.yaml").write_text("just words\n")
    with pytest.raises(ConfigError) as caught:
        config.load(main)
    assert [str(i) for i in caught.value.issues] == [
        f"{tmp_path / 'conf.d' / 'a.yaml'}:1:1: a target file must be a list of targets (or a "
        "mapping with labels: and targets:), not a string"
    ]


def test_refused_file_keeps_its_previous_targets_and_a_new_one_is_absent(
    tmp_path: Path, key: Path
) -> None:
    """Over the previous load, a broken file keeps its old targets; a broken new one has none."""
    main = _main(tmp_path)
    (tmp_path / "conf.d" / "a.yaml").write_text(_target("a", key))
    (tmp_path / "conf.d" / "b.yaml").write_text(_target("b", key))
    before = load_fleet(main)
    (tmp_path / "conf.d" / "a.yaml").write_text(_target("a2", key, "  colour: red\n"))
    (tmp_path / "conf.d" / "c.yaml").write_text("- {name: c}\n")
    (tmp_path / "conf.d" / "b.yaml").unlink()
    after = load_fleet(main, before)
    assert [t.name for t in after.config.targets] == ["a"]
    assert sorted(Path(f).name for f in after.broken) == ["a.yaml", "c.yaml"]
    assert after.config.targets[0] == before.config.targets[0]


def test_discover_template_with_an_unknown_field_is_located(tmp_path: Path) -> None:
    """A name template naming a field that does not exist is an error listing the fields."""
    main = _main(
        tmp_path, "discover:\n  - name: d\n    paths: [x/*]\n    certificate_name: '{uid}'\n"
    )
    with pytest.raises(ConfigError) as caught:
        config.load(main)
    (issue,) = caught.value.issues
    assert str(issue).startswith(f"{main}:4:5: discover[0].certificate_name: bad name template")
    assert "{topic}" in str(issue)


def test_no_targets_anywhere_is_an_error(tmp_path: Path) -> None:
    """target_files whose globs find nothing, and no discover source, is refused on load."""
    main = _main(tmp_path)
    with pytest.raises(ConfigError, match="no targets found in the files it names"):
        config.load(main)
