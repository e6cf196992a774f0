"""Bad inputs and rough handling through the real entry points: one clear line, nothing half-written.

Each case runs a tool in a subprocess (as a user would) or the entry-point wrapper, and checks the exit
code, that stderr is one line naming the file or key, and what is (not) left on disk.
"""
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from helpers import tiny_config
from spp_det.cli import run_main
from spp_det.data.synthetic import CLASSES, make_synthetic_voc
from spp_det.io_utils import remove_stale_temps, temp_prefix, workdir_lock

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_voc(tmp_path_factory.mktemp("bad") / "VOC2007", seed=7, num_trainval=24, num_test=4,
                              min_side=220, max_side=260, progress=None)


def write_config(tmp_path: Path, data: Path, **over) -> Path:
    cfg = tiny_config(tmp_path, data, **over)
    del cfg["dataset"]["generate"]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def tool(name: str, config: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), "--config", str(config), "--no-progress",
                           *extra], capture_output=True, text=True, timeout=timeout)


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and f"\nPPid:\t{pid}\n" in (d / "status").read_text():
                out.append(int(d.name))
        except OSError:
            pass
    return out


def running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def one_error_line(p: subprocess.CompletedProcess) -> str:
    lines = [l for l in p.stderr.splitlines() if l.strip() and " INFO " not in l]
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_a_bom_in_a_split_file_is_dropped(data, tmp_path):
    from spp_det.data.voc import VOCDataset
    split = data / "ImageSets" / "Main" / "bom.txt"
    split.write_bytes(b"\xef\xbb\xbf" + (data / "ImageSets" / "Main" / "test.txt").read_bytes())
    assert [r.image_id for r in VOCDataset(data, "bom", CLASSES).records] == \
        [r.image_id for r in VOCDataset(data, "test", CLASSES).records]


def test_a_second_run_on_a_busy_workdir_stops_with_a_clear_message(data, tmp_path):
    cfg = write_config(tmp_path, data)
    with workdir_lock(tmp_path / "work"):
        line = one_error_line(tool("compute_proposals.py", cfg))
    assert "another run is using this work directory" in line and str(tmp_path / "work") in line
    assert not (tmp_path / "work" / "proposals").exists()


def test_temporary_files_of_killed_runs_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "sub").mkdir()
    host = temp_prefix("x").split(".")[2]
    left = tmp_path / "sub" / f".x.npy.{host}.{dead.pid}.abcdefgh.tmp.npy"  # what a kill -9 leaves
    left.write_bytes(b"half")
    gen = tmp_path / f".VOC2007.{host}.{dead.pid}.a1b2c3d4"  # a killed dataset generation
    gen.mkdir()
    other = tmp_path / f".z.json.otherhost.{dead.pid}.abcdefgh.tmp"  # another machine's: not ours to judge
    other.write_text("{")
    mine = tmp_path / f"{temp_prefix('y.json')}zzzzzzzz.tmp"  # being written by this process
    mine.write_text("{")
    keep = tmp_path / "sub" / "x.npy"
    keep.write_bytes(b"done")
    assert remove_stale_temps(tmp_path, depth=1) == 2
    assert not left.exists() and not gen.exists() and mine.exists() and keep.exists() and other.exists()


def test_a_full_or_read_only_disk_is_one_line_naming_the_path(capsys):
    def fail():
        raise OSError(28, "No space left on device", "/runs/w/conv5/x.npy")
    assert run_main(fail) == 2
    err = capsys.readouterr().err
    assert err == "error: /runs/w/conv5/x.npy: No space left on device\n"


def _start_and_kill(cfg: Path, sig: int) -> tuple[int, str, list[int]]:
    """Run the proposals tool, send ``sig`` once 3 images are done; (exit code, stderr, its workers)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "compute_proposals.py"), "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err, some_done = [], threading.Event()

    def watch():  # the progress bar (on stderr, carriage returns) says how many images are done
        while chunk := os.read(proc.stderr.fileno(), 4096):
            err.append(chunk.decode(errors="replace"))
            if any(int(n) >= 3 for n in re.findall(r"proposals trainval:.*?(\d+)/24", "".join(err)[-400:])):
                some_done.set()
    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    assert some_done.wait(180), "".join(err)
    workers = children(proc.pid)
    assert len(workers) >= 2, workers  # the pool's 2 workers (and the resource tracker of the spawn context)
    proc.send_signal(sig)
    code = proc.wait(60)
    reader.join(10)
    time.sleep(1.0)
    return code, "".join(err), workers


def test_sigterm_keeps_the_finished_proposals_like_ctrl_c(data, tmp_path):
    cfg = write_config(tmp_path, data, proposals={"workers": 2, "base_k": 50, "inc_k": 50, "max_boxes": 2000})
    code, text, workers = _start_and_kill(cfg, signal.SIGTERM)
    assert code == 143, text
    assert "terminated: finished work is kept" in text and "Traceback" not in text and "BrokenPipe" not in text
    props = tmp_path / "work" / "proposals"
    from proposals.cache import load_proposals
    partial = load_proposals(props / "trainval.partial.npz")
    assert 3 <= len(partial) < 24 and not (props / "trainval.npz").exists()
    assert not [w for w in workers if running(w)]  # no orphaned workers (zombies wait for init to reap them)
    p = tool("compute_proposals.py", cfg)  # resumes
    assert p.returncode == 0, p.stderr
    assert f"resuming proposals from {props / 'trainval.partial.npz'} ({len(partial)}/24 done)" in p.stderr


def test_kill_9_leaves_no_orphaned_workers_and_a_clean_rerun(data, tmp_path):
    cfg = write_config(tmp_path, data, proposals={"workers": 2, "base_k": 50, "inc_k": 50, "max_boxes": 2000})
    code, text, workers = _start_and_kill(cfg, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not [w for w in workers if running(w)]
    assert "Traceback" not in text and "BrokenPipe" not in text, text  # they died with their parent, quietly
    assert not list((tmp_path / "work" / "proposals").glob("*.npz"))
    p = tool("compute_proposals.py", cfg)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert (tmp_path / "work" / "proposals" / "trainval.npz").is_file()


def _break(root: Path, case: str) -> tuple[str, str]:
    """Break one thing in a copy of the dataset; returns (the file the error must name, its message)."""
    main = root / "ImageSets" / "Main"
    first = (main / "trainval.txt").read_text().split()[0]
    xml, jpg = root / "Annotations" / f"{first}.xml", root / "JPEGImages" / f"{first}.jpg"
    text = xml.read_text()
    if case == "malformed_xml":
        xml.write_text(text[: len(text) // 2])
        return str(xml), "malformed XML"
    if case == "unknown_class":
        xml.write_text(re.sub(r"<name>\w+</name>", "<name>unicorn</name>", text, count=1))
        return str(xml), "unknown class 'unicorn'"
    if case == "inverted_box":
        xmin = re.search(r"<xmin>(\d+)</xmin>", text).group(1)
        xml.write_text(re.sub(r"<xmax>\d+</xmax>", f"<xmax>{int(xmin) - 1}</xmax>", text, count=1))
        return str(xml), "inverted box"
    if case == "box_outside":
        xml.write_text(re.sub(r"<xmax>\d+</xmax>", "<xmax>5000</xmax>", text, count=1))
        return str(xml), "is outside the"
    if case == "missing_annotation":
        xml.unlink()
        return str(xml), "annotation file not found"
    if case == "missing_image":
        jpg.unlink()
        return str(xml), "image file not found"
    if case == "corrupt_image":
        jpg.write_bytes(jpg.read_bytes()[:200])
        return str(jpg), "cannot decode image"
    if case == "size_mismatch":
        xml.write_text(re.sub(r"<width>\d+</width>", "<width>999</width>", text, count=1))
        return str(jpg), "but its annotation"
    if case == "duplicate_id":
        (main / "trainval.txt").write_text((main / "trainval.txt").read_text() + f"{first}\n")
        return str(main / "trainval.txt"), "listed twice"
    if case == "empty_split":
        (main / "test.txt").write_text("\n")
        return str(main / "test.txt"), "is empty"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["malformed_xml", "unknown_class", "inverted_box", "box_outside",
                                  "missing_annotation", "missing_image", "corrupt_image", "size_mismatch",
                                  "duplicate_id", "empty_split"])
def test_a_broken_dataset_is_one_line_naming_the_file_and_nothing_is_written(data, tmp_path, case):
    import shutil
    root = tmp_path / "VOC2007"
    shutil.copytree(data, root)
    where, what = _break(root, case)
    line = one_error_line(tool("compute_proposals.py", write_config(tmp_path, root)))
    assert where in line and what in line, line
    assert not list((tmp_path / "work").glob("proposals/*.npz"))  # no result, not even a partial one


def test_atomic_writes_get_the_permissions_a_plain_open_gives(tmp_path):
    """Outputs are written to a private temporary file and renamed; the result must still be readable by
    whoever could read a file the user wrote with open() (a report served from the work directory)."""
    import stat
    from spp_det.io_utils import save_text
    save_text("x", tmp_path / "atomic.txt")
    (tmp_path / "plain.txt").write_text("x")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    assert mode(tmp_path / "atomic.txt") == mode(tmp_path / "plain.txt")
