"""Issue 15, item 8: bad config input that used to escape `check-config` and `run`.

Each case goes through the real entry point, ``supervisor.host.cli.main``, with its output
captured: a bad file must end with exit status 2 and a message naming the file and the key
path (or line), never a traceback; a file that cannot run a bot must not pass the check.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from supervisor.host.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "config.yaml"
ECHO = "tests.support.fixture_actors:Echo"


def _check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(path: Path, capsys: pytest.CaptureFixture[str], *keys: str) -> str:
    """Both `check-config` and `run` refuse ``path`` with exit 2, naming it and ``keys``."""
    for argv in (["check-config", str(path)], ["run", "--config", str(path), "--duration", "1"]):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 2, (argv, out, err)
        assert "Traceback" not in err + out
        assert f"invalid configuration in {path}" in err
        for key in keys:
            assert key in err, (key, err)
    return err


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"tree:\n  children:\n    - name: caf\xe9\n")
    err = _refused(path, capsys, "line 3, column 16", "not UTF-8")
    assert "0xe9" in err


def test_a_duplicate_name_inside_a_nested_supervisor(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(f"""
tree:
  children:
    - name: group
      children:
        - {{name: twin, actor: '{ECHO}'}}
        - {{name: twin, actor: '{ECHO}'}}
""")
    _refused(path, capsys, "tree.children[0].children[1].name", "'twin' is already used")


def test_nesting_2000_deep_names_the_key(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(f"""
tree:
  children:
    - name: e
      actor: '{ECHO}'
      settings:
        label: {"[" * 2000}{"]" * 2000}
""")
    _refused(path, capsys, "tree.children[0].settings.label[0]", "nested more than 64")


def test_an_integer_over_python_limit_names_the_key(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "int.yaml"
    path.write_text(f"runtime:\n  ask_timeout: {'9' * 4301}\n"
                    f"tree:\n  children:\n    - {{name: e, actor: '{ECHO}'}}\n")
    _refused(path, capsys, "runtime.ask_timeout", "4301 digits")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "runtime: {name: r}\n",
                                  "tree: {children: []}\n"])
def test_a_config_without_actors_does_not_pass(tmp_path: Path, text: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    err = _refused(path, capsys)
    assert "(file): is empty" in err or "tree.children: the tree has no actors" in err


def test_duplicate_yaml_keys_are_refused_with_both_lines(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(f"""tree:
  children:
    - name: e
      actor: '{ECHO}'
      settings: {{label: one}}
      settings: {{label: two}}
""")
    _refused(path, capsys, "tree.children[0].settings: given twice (line 5 and line 6)")


def test_a_merge_key_overridden_is_not_a_duplicate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(f"""x-base: &base {{label: base}}
tree:
  children:
    - name: e
      actor: '{ECHO}'
      settings: {{<<: *base, label: mine}}
""")
    assert _check(path, capsys)[0] == 0


def test_a_csv_market_without_csv_dir_is_refused_at_load(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "csv.yaml"
    path.write_text("""tree:
  children:
    - name: market
      actor: actors.market.feed:MarketActor
      settings: {source: csv}
""")
    _refused(path, capsys, "tree.children[0].settings", "needs csv_dir")
    path.write_text(path.read_text().replace("{source: csv}",
                                             f"{{source: csv, csv_dir: '{tmp_path}'}}"))
    _refused(path, capsys, "has no *.csv files")


@pytest.mark.parametrize("value", ["/", "''", "'   '", "'{tmp}'", "'{tmp}/'", "'{cfg}/x.db'"])
def test_a_database_path_that_cannot_be_a_file_is_refused(
        tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "db.yaml"
    value = value.format(tmp=tmp_path, cfg=path)
    path.write_text(f"""tree:
  children:
    - name: breaker
      actor: actors.risk.breaker:BreakerActor
      settings: {{database: {value}}}
""")
    _refused(path, capsys, "tree.children[0].settings.database")


def test_check_config_does_not_run_a_foreign_module(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A module outside the trusted packages is read, not imported: its top-level code
    does not run during the check, and a name it does not define is still refused."""
    marker = tmp_path / "ran"
    name = f"foreign_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "from supervisor import SupervisedActor\n"
        "class Thing(SupervisedActor):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "foreign.yaml"
    path.write_text(f"tree:\n  children:\n    - {{name: t, actor: '{name}:Thing'}}\n")
    code, out, err = _check(path, capsys)
    assert code == 0, err
    assert "not imported; its settings are checked when it runs" in out
    assert not marker.exists()
    assert name not in sys.modules

    path.write_text(f"tree:\n  children:\n    - {{name: t, actor: '{name}:Nothing'}}\n")
    code, out, err = _check(path, capsys)
    assert code == 2
    assert f"tree.children[0].actor: module {name!r}" in err and "defines no 'Nothing'" in err
    assert not marker.exists()

    path.write_text("tree:\n  children:\n    - {name: t, actor: '.relative:Thing'}\n")
    code, out, err = _check(path, capsys)
    assert code == 2 and "must be an import path" in err and "Traceback" not in err


def test_the_trusted_packages_are_still_imported_and_their_settings_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _check(SHIPPED, capsys)
    assert code == 0, err
    assert "not imported" not in out


def test_a_module_that_fails_to_import_is_a_config_error_at_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    name = f"broken_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("Thing = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "broken.yaml"
    path.write_text(f"tree:\n  children:\n    - {{name: t, actor: '{name}:Thing'}}\n")
    code = main(["run", "--config", str(path), "--duration", "1"])
    _out, err = capsys.readouterr()
    assert code == 2
    assert "tree.children[0].actor" in err and "ZeroDivisionError" in err
    assert "Traceback" not in err


def test_odd_characters_in_keys_are_escaped_in_the_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text('runtime: {"evil\\u202e\\x00key": 1}\n'
                    f"tree:\n  children:\n    - {{name: e, actor: '{ECHO}'}}\n",
                    encoding="utf-8")
    err = _refused(path, capsys, "runtime.evil\\u202e\\x00key: unknown key")
    assert "\u202e" not in err and "\x00" not in err


def test_aliases_that_expand_without_end_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(f"x-{line}" for line in lines) +
                    f"\ntree:\n  children:\n    - {{name: e, actor: '{ECHO}'}}\n")
    _refused(path, capsys, "aliases are expanded")


@pytest.mark.parametrize("argv", [
    ["run", "--config", "/nonexistent/config.yaml", "--duration", "nan"],
    ["run", "--config", "/nonexistent/config.yaml", "--duration", "inf"],
    ["status", "--socket", "/nonexistent/botvisor.sock", "--timeout", "inf"],
    ["status", "--socket", "/nonexistent/botvisor.sock", "--timeout", "nan"],
    ["events", "--socket", "/nonexistent/botvisor.sock", "--timeout", "1e300"],
])
def test_seconds_on_the_command_line_must_be_finite(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`--duration nan` used to start a bot that never stopped by itself; `--timeout inf`
    ended in an OverflowError's traceback."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    _out, err = capsys.readouterr()
    assert caught.value.code == 2
    assert "must be > 0" in err and "Traceback" not in err
