"""The command line: --help at every level, --json where a command reports,
user errors as one line naming the value and the fix (exit 2)."""

from __future__ import annotations

import importlib
import json
import pathlib
import re
import subprocess
import sys

import pytest

from appliance import cli

PATHS = [c.path for c in cli.COMMANDS]


@pytest.mark.parametrize("path", [(), *PATHS], ids=lambda p: " ".join(p) or "tickwire")
def test_every_level_has_help(path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([*path, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tickwire")
    if path:
        assert next(c.help for c in cli.COMMANDS if c.path == path) in " ".join(out.split())


def test_every_verb_that_reports_takes_json():
    parser = cli.build_parser()
    for cmd in cli.COMMANDS:
        if cmd.handler is None:
            continue
        sub = parser
        for word in cmd.path:
            sub = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction").choices[word]
        assert any("--json" in a.option_strings for a in sub._actions), cmd.path


def test_version_json_names_the_dpdk_the_extension_was_built_with(capsys):
    assert cli.main(["version", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dpdk"].startswith("DPDK 22.11")
    assert report["tickwire"] == cli.__version__


@pytest.mark.parametrize("argv, message", [
    (["lab", "up", "--prefix", "Bad-1"], "--prefix 'Bad-1' is not a valid lab prefix"),
    (["lab", "impair", "feed-c", "--loss", "1"], "lab link 'feed-c' does not exist; the links are: feed-a-app"),
    (["lab", "impair", "feed-a-app", "--loss", "150"], "--loss 150: a percentage must be within 0..100"),
    (["lab", "impair", "feed-a-app", "--reorder", "5"], "--reorder 5 needs a delay"),
    (["lab", "impair", "feed-a-app"], "no impairment given"),
    (["lab", "clear", "nope"], "lab link 'nope' does not exist"),
])
def test_user_errors_are_one_line_naming_the_value(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


EXTENSIONS = ("dpdk._native", "dpdk._lab", "xdp._libbpf")


def without_extensions(argv: list[str], blocked: tuple[str, ...] = EXTENSIONS) -> subprocess.CompletedProcess:
    """The CLI in a child where the blocked C extensions cannot be imported (as on a tree not built)."""
    code = (f"import sys; sys.modules.update(dict.fromkeys({blocked!r})); from appliance import cli; "
            f"sys.exit(cli.main({argv!r}))")
    return subprocess.run([sys.executable, "-c", code], cwd=pathlib.Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv, module", [
    (["config", "check", "examples/market_maker.yaml"], "dpdk._native"),  # the risk limits come from its struct
    (["xdp", "stats", "lo"], "xdp._libbpf"),
])
def test_a_missing_c_extension_is_one_line_naming_the_fix(argv, module):
    res = without_extensions(argv)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"tickwire {' '.join(argv[:2])}: the C extension {module} is not built")
    assert "run `make build`" in res.stderr


@pytest.mark.parametrize("argv", [["tune", "audit", "--json"], ["lab", "status", "--json"], ["xdp", "status"]])
def test_verbs_that_need_no_c_extension_run_without_one(argv):
    res, built = without_extensions(argv), without_extensions(argv, blocked=())
    assert "not built" not in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert res.stdout.strip() and res.returncode == built.returncode, res.stderr  # as with the extensions


def test_a_missing_verb_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["lab"])
    assert exc.value.code == 2
    assert "VERB" in capsys.readouterr().err


def test_every_row_of_the_table_has_help_and_a_handler_or_verbs_under_it():
    paths = [c.path for c in cli.COMMANDS]
    assert len(paths) == len(set(paths)), "a verb is in the table twice"
    for i, cmd in enumerate(cli.COMMANDS):
        assert cmd.help.strip(), f"{' '.join(cmd.path)} has no help"
        assert cmd.path[:-1] == () or cmd.path[:-1] in paths[:i], f"{' '.join(cmd.path)} comes before its group"
        children = [p for p in paths if p[:-1] == cmd.path]
        if cmd.handler is None:
            assert children, f"the group {' '.join(cmd.path)} has no verbs"
        else:
            assert callable(cmd.handler) and not children, f"{' '.join(cmd.path)} is a verb and a group"
            assert cmd.render is None or callable(cmd.render)


def test_the_table_is_the_verb_groups_joined_and_nothing_below_imports_the_cli():
    """appliance/commands/ holds one module per verb group; no library module (nor a group) imports
    appliance.cli back, nor a verb group."""
    root = pathlib.Path(cli.__file__).parents[1]
    groups = {p.stem for p in (root / "appliance" / "commands").glob("*.py")} - {"__init__", "kit"}
    rows = {c.path: c for c in cli.COMMANDS}
    for g in groups:
        module = importlib.import_module(f"appliance.commands.{g}")
        assert all(rows.get(c.path) is c for c in module.COMMANDS), g
    assert sum(len(importlib.import_module(f"appliance.commands.{g}").COMMANDS) for g in groups) == len(rows)
    for pkg in ("appliance", "dpdk", "xdp", "tuning"):
        for path in (root / pkg).rglob("*.py"):
            text = path.read_text()
            rel = path.relative_to(root).as_posix()
            if rel != "appliance/cli.py":
                back = r"^\s*(from appliance\.cli import|import appliance\.cli|from appliance import cli)"
                assert not re.search(back, text, re.M), f"{rel} imports the CLI back"
            if not rel.startswith("appliance/commands/") and rel != "appliance/cli.py":
                assert "appliance.commands" not in text, f"{rel} imports a verb group"


def test_the_feed_face_names_its_functions_after_its_modules_are_loaded():
    # appliance.feed loads each name on first use; a module named like one of them would shadow it
    # once imported (a CI run's `tickwire top` found feed.status to be the module)
    import importlib
    import pkgutil
    import types

    from appliance import feed

    for m in pkgutil.iter_modules(feed.__path__):
        importlib.import_module(f"appliance.feed.{m.name}")
    assert [n for n in feed.__all__ if isinstance(getattr(feed, n), types.ModuleType)] == []


def test_the_operator_is_the_users_the_kernel_names_and_sudo_user_only_a_claim(monkeypatch):
    # issue 16: "who" came from SUDO_USER, which anyone can set
    import os
    import pwd

    from common import operator as who

    monkeypatch.setenv("SUDO_USER", "mallory")
    assert who.operator() == pwd.getpwuid(os.getuid()).pw_name != "mallory"
    assert who.claim() == "mallory"
    monkeypatch.delenv("SUDO_USER")
    assert who.claim() is None
    assert who.user_name(2**31 - 7) == f"uid {2**31 - 7}"


def test_a_kill_says_who_by_the_kernel_and_shows_sudo_user_only_as_a_claim(capsys):
    from appliance.commands.trading import render_kill

    base = {"name": "tw", "level": "strategy", "target": "mm-a", "locate": None, "reason": "r", "acted_after_us": 9,
            "cancels": 3, "cancels_sent_after_us": 12}
    render_kill({**base, "kill": True, "who": "root", "claimed": "alice"})
    render_kill({**base, "kill": False, "who": "root", "claimed": None})
    out = " ".join(capsys.readouterr().out.split())
    assert "(by root, claiming to act for alice: r)" in out and "(by root: r)" in out


def test_the_command_events_name_worker_hs_commands_and_results():
    from dpdk import native
    from dpdk.books import COMMAND_RESULTS, COMMANDS

    _, lib = native()
    assert {lib.TW_CMD_KILL_INSTRUMENT: ("kill", "instrument"), lib.TW_CMD_RELEASE_INSTRUMENT: ("resume", "instrument"),
            lib.TW_CMD_KILL_STRATEGY: ("kill", "strategy"), lib.TW_CMD_RELEASE_STRATEGY: ("resume", "strategy"),
            lib.TW_CMD_KILL: ("kill", "global"), lib.TW_CMD_RELEASE: ("resume", "global"),
            lib.TW_CMD_RELOAD: ("reload", None)} == COMMANDS
    assert [lib.TW_CMDR_DONE, lib.TW_CMDR_NO_TARGET, lib.TW_CMDR_REFUSED, lib.TW_CMDR_MALFORMED] == \
        [COMMAND_RESULTS.index(r) for r in ("done", "no_target", "refused", "malformed")]
