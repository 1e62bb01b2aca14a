"""The last good rule set under state.dir: kept whole, read back with the same digest,
and refused when damaged."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from monitor.rules.lastgood import FILE, LastGood, LastGoodUnusable
from monitor.rules.loader import load_rules
from tests.support.engine import T0

RULE = "rules:\n  - {id: r, severity: high, match: {action: select}}\n"


def test_a_kept_set_loads_back_with_its_digest_and_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "a.yaml").write_text(RULE)
    (folder / "b.yaml").write_text("lists:\n  tables: [customers]\n" + RULE.replace("id: r", "id: s"))
    rs = load_rules(folder)
    store = LastGood(tmp_path / "state")
    assert store.load() is None
    store.save(rs, loaded_at_ms=T0, origin=str(folder))
    assert (tmp_path / "state" / FILE).is_file()
    assert not list((tmp_path / "state" / FILE).parent.glob("*.tmp"))
    kept = store.load()
    assert kept is not None
    assert kept.ruleset.digest == rs.digest and kept.ruleset.files == rs.files
    assert [r.spec.file for r in kept.ruleset.rules] == [r.spec.file for r in rs.rules]
    assert (kept.loaded_at_ms, kept.path) == (T0, str(folder))


def test_a_newer_save_replaces_the_older(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE)
    store = LastGood(tmp_path / "state")
    store.save(load_rules(tmp_path / "r.yaml"), loaded_at_ms=T0, origin="x")
    (tmp_path / "r.yaml").write_text(RULE.replace("high", "low"))
    second = load_rules(tmp_path / "r.yaml")
    store.save(second, loaded_at_ms=T0 + 1, origin="x")
    kept = store.load()
    assert kept is not None and kept.ruleset.digest == second.digest


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda doc: doc["files"][0].update(text=doc["files"][0]["text"] + "# edited\n"), "do not match"),
        (lambda doc: doc.update(format=99), "format 99"),
        (lambda doc: doc.pop("files"), "damaged"),
    ],
)
def test_a_damaged_copy_is_refused_saying_why(tmp_path: Path, damage: object, says: str) -> None:
    (tmp_path / "r.yaml").write_text(RULE)
    store = LastGood(tmp_path / "state")
    store.save(load_rules(tmp_path / "r.yaml"), loaded_at_ms=T0, origin="x")
    doc = orjson.loads(store.path.read_bytes())
    damage(doc)  # type: ignore[operator]
    store.path.write_bytes(orjson.dumps(doc))
    with pytest.raises(LastGoodUnusable, match=says):
        store.load()


def test_a_torn_copy_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE)
    store = LastGood(tmp_path / "state")
    store.save(load_rules(tmp_path / "r.yaml"), loaded_at_ms=T0, origin="x")
    store.path.write_bytes(store.path.read_bytes()[:40])
    with pytest.raises(LastGoodUnusable, match="damaged"):
        store.load()
