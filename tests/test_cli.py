"""The `spp-det` command: every action is a subcommand, `--help` lists each with one line, the tools are
thin wrappers of the same commands, shipped configs resolve by name, and the wheel installs the command
and the configs."""
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from spp_det.cli import find_config, main
from spp_det.cli.commands import COMMANDS
from spp_det.stages import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[1]
# what the issue names, beside the stages
ACTIONS = ("run", "eval", "detect", "demo", "time", "combine", "pretrain", "compare", "eval-proposals")


def test_help_lists_every_command_with_its_line():
    p = subprocess.run([sys.executable, "-m", "spp_det", "--help"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    names = [c.name for c in COMMANDS]
    assert len(set(names)) == len(names)
    assert set(ACTIONS) <= set(names) and set(STAGE_NAMES) <= set(names)
    text = " ".join(p.stdout.split())  # argparse wraps the lines
    for c in COMMANDS:
        assert re.search(rf"\s{re.escape(c.name)}\s+{re.escape(c.help.split()[0])}", " " + text), c.name


def test_every_tool_is_a_wrapper_of_a_command():
    known = {c.name for c in COMMANDS}
    tools = sorted((ROOT / "tools").glob("*.py"))
    assert tools
    for t in tools:
        m = re.search(r'tool_main\("([^"]+)"\)', t.read_text())
        assert m and m.group(1) in known, t.name
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "train_svm.py"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "usage: spp-det svm" in p.stdout


def test_shipped_configs_resolve_by_name_and_unknown_names_fail_in_one_line(tmp_path, capsys):
    assert find_config("demo") == ROOT / "configs" / "demo.yaml"
    assert find_config("voc07_zf5.yaml") == ROOT / "configs" / "voc07_zf5.yaml"
    mine = tmp_path / "demo.yaml"  # an existing path wins over a shipped name
    mine.write_text("name: mine\n")
    assert find_config(str(mine)) == mine
    with pytest.raises(FileNotFoundError, match="shipped: .*demo, "):
        find_config("no_such_config")
    assert main(["run", "--config", "no_such_config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no_such_config: no such config file")


def test_eval_needs_exactly_one_source(capsys):
    assert main(["eval", "--results", "somewhere"]) == 2
    assert "give --config, or --results and --voc-root" in capsys.readouterr().err


def test_wheel_installs_the_command_and_the_configs(tmp_path):
    src = tmp_path / "src"  # a copy: an in-tree build would leave build/ in the clone
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "spp_det", "proposals", "configs"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (wheel,) = tmp_path.glob("spp_det-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert re.search(r"^spp-det = spp_det\.cli:main$", entry, re.M)
    shipped = {Path(n).name for n in names if "/share/spp-det/configs/" in n}
    assert shipped == {f.name for f in (ROOT / "configs").glob("*.yaml")}
    assert "spp_det/cli/commands.py" in names and "proposals/selective_search.py" in names
