"""torchrun: two processes give what one process gives (the same proposals, conv5 maps, fine-tuned head,
SVMs, box regressors, comp4 files and mAP), and a rerun under torchrun resumes (skips) like a rerun of one
process."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from proposals.cache import load_proposals
from spp_det.distributed import Dist
from helpers import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_shard_splits_every_item_once_in_rank_order():
    items = list(range(11))
    shards = [Dist(r, 3).shard(items) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert Dist().shard(items) == items and Dist().main and not Dist(1, 3).main
    assert Dist().gather("x") == ["x"]


def _run(cmd, env):
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    data = tmp_path / "data" / "VOC2007"
    cfgs = {}
    for name in ("one", "two"):
        c = tiny_config(tmp_path / name, data)
        c["finetune"]["iterations"] = 20
        c["finetune"]["micro_batches"] = 2  # two processes share each mini-batch (DistributedDataParallel)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(c))
        cfgs[name] = (path, Path(c["workdir"]))
    # the same threads per process in both runs (torchrun's default for several processes: 1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo on loopback: no dependence on the host name resolving
    tool = str(ROOT / "tools" / "run_pipeline.py")
    _run([sys.executable, tool, "--config", str(cfgs["one"][0]), "--no-progress"], env)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", tool,
                "--config", str(cfgs["two"][0]), "--no-progress"]
    out = _run(torchrun, env)
    one, two = cfgs["one"][1], cfgs["two"][1]
    assert out.count("[conv5] running") == 1  # rank 0 alone prints
    assert "fine-tuning on rank 0 alone" not in out and out.count("fine-tuning: 20 iterations") == 2  # both ranks
    # proposals: the merged file holds what one process wrote, and no shard is left
    for split in ("trainval", "test"):
        a, b = load_proposals(one / "proposals" / f"{split}.npz"), load_proposals(two / "proposals" / f"{split}.npz")
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not list((two / "proposals").glob("*shard*"))
    # conv5 maps, byte for byte; the fine-tuned head (one process computes both halves of each mini-batch,
    # two processes one half each), the SVMs and box regressors (two processes: half of the classes each)
    assert _files(one / "conv5") == _files(two / "conv5")
    for f in ("finetune/best.pt", "svm/fc7.pt", "svm/pool5.pt", "bbox_reg/model.pt"):
        a, b = (torch.load(w / f, weights_only=False) for w in (one, two))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k]
                                            for k in a), f
    det_one, det_two = _files(one / "detections"), _files(two / "detections")
    assert len(det_one) >= 3 * 6 and det_one == det_two
    for v in ("pool5", "fc7", "fc7_bbox"):
        assert json.loads((one / "eval" / f"test_{v}.json").read_text()) == \
            json.loads((two / "eval" / f"test_{v}.json").read_text())
    # a rerun under torchrun skips every stage
    again = _run(torchrun, env)
    for stage in ("proposals", "conv5", "finetune", "svm", "test", "eval"):
        assert f"[{stage}] up to date, skipped" in again
    # --nnodes with the standard rendezvous: two launchers of one process each ("nodes" on this machine,
    # sharing the file system as real nodes must) give the same detections again
    c = tiny_config(tmp_path / "nodes", data)
    c["finetune"].update(iterations=20, micro_batches=2)
    (tmp_path / "nodes.yaml").write_text(yaml.safe_dump(c))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launchers = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
         str(n), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "nodes", tool,
         "--config", str(tmp_path / "nodes.yaml"), "--no-progress"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for n in (0, 1)]
    outs = [p.communicate(timeout=900)[0] for p in launchers]
    assert [p.returncode for p in launchers] == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    assert _files(Path(c["workdir"]) / "detections") == det_one


def test_merge_shards_writes_the_split_in_order_and_removes_every_shard(tmp_path):
    from proposals.cache import merge_shards, read_meta, save_proposals, shard_files, shard_path
    from proposals.selective_search import SearchParams
    out = tmp_path / "test.npz"
    items = [(f"im{i}", f"im{i}.jpg", (10, 10)) for i in range(5)]
    boxes = {i: np.full((k + 1, 4), float(k), np.float32) for k, (i, _, _) in enumerate(items)}
    for r in range(2):
        save_proposals(shard_path(out, r, 2), {i: boxes[i] for i, _, _ in items[r::2]}, {"hash": "h"})
    save_proposals(shard_path(out, 0, 3), {}, {"hash": "old"})  # left by a killed 3-rank run
    merge_shards(out, [shard_path(out, r, 2) for r in range(2)], items, SearchParams(), "h")
    got = load_proposals(out, "h")
    assert list(got) == [i for i, _, _ in items] and all(np.array_equal(got[i], boxes[i]) for i in got)
    assert read_meta(out)["num_images"] == 5 and shard_files(out) == []
    # a missing image is one clear error, not a short file
    save_proposals(shard_path(out, 0, 2), {"im0": boxes["im0"]}, {"hash": "h"})
    with pytest.raises(ValueError, match="lack 4 images"):
        merge_shards(tmp_path / "x.npz", [shard_path(out, 0, 2)], items, SearchParams(), "h")


@pytest.mark.slow
def test_two_processes_share_conv_fine_tuning(tmp_path):
    """Conv fine-tuning (image-centric mini-batches of 2 images, one per process): the same head and trunk."""
    data = tmp_path / "data" / "VOC2007"
    works = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    tool = str(ROOT / "tools" / "run_pipeline.py")
    for name, launch in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"])):
        c = tiny_config(tmp_path / name, data)
        c["finetune"].update({"iterations": 6, "conv_layers": 1, "micro_batches": 2, "snapshot_every": 3})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(c))
        out = _run([sys.executable, *launch, tool, "--config", str(path), "--no-progress",
                    "--stages", "dataset,proposals,conv5,finetune"], env)
        assert out.count("fine-tuning: 6 iterations") == (2 if launch else 1)  # under torchrun, both ranks
        works.append(Path(c["workdir"]))
    for f in ("finetune/best.pt", "finetune/trunk.pt"):
        a, b = (torch.load(w / f, weights_only=True) for w in works)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f


def test_a_rank_working_alone_takes_the_threads_of_the_ranks_waiting_on_its_machine():
    # torchrun gives each of 2 ranks on a machine 1 thread; the stage rank 0 runs alone gets both
    # machine's cores (at most), the waiting rank keeps its 1, and every count comes back on exit
    cores = len(os.sched_getaffinity(0))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with Dist(0, 2, 2).alone():
            assert torch.get_num_threads() == min(2, cores)
        assert torch.get_num_threads() == 1
        with Dist(1, 2, 2).alone():  # a waiting rank
            assert torch.get_num_threads() == 1
        with Dist(0, 2, 1).alone():  # its partner is on another machine: no cores to take
            assert torch.get_num_threads() == 1
        torch.set_num_threads(cores)
        with Dist(0, 4, 4).alone():  # never past the cores
            assert torch.get_num_threads() == cores
        torch.set_num_threads(1)
        with pytest.raises(RuntimeError):
            with Dist(0, 2, 2).alone():
                raise RuntimeError("the stage failed")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_fine_tuning_on_rank_0_alone_equals_one_process_on_the_same_cores(tmp_path):
    # micro_batches 1 (the default) under torchrun: rank 0 fine-tunes alone, with the waiting rank's
    # thread, so 2 processes of 1 thread give the head of 1 process of 2 threads, bit for bit
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores")
    data = tmp_path / "data" / "VOC2007"
    heads = {}
    tool = str(ROOT / "tools" / "run_pipeline.py")
    for name, threads, launch in (("one", "2", []),
                                  ("two", "1", ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"])):
        c = tiny_config(tmp_path / name, data, model={"scales": [224], "fc_dim": 512})
        c["finetune"]["iterations"] = 10
        # the same proposals and conv5 maps (conv5 of 1 thread and of 2 may differ in the last bit)
        c["proposals"]["cache_dir"] = str(tmp_path / "one" / "work" / "proposals")
        c["features"] = {"conv5_root": str(tmp_path / "one" / "work" / "conv5")}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(c))
        env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(ROOT)}
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
        out = _run([sys.executable, *launch, tool, "--config", str(path), "--stages", "dataset,proposals,conv5,finetune",
                    "--no-progress"], env)
        assert ("fine-tuning on rank 0 alone" in out) == bool(launch)
        heads[name] = torch.load(Path(c["workdir"]) / "finetune" / "best.pt", weights_only=False)
    a, b = heads["one"], heads["two"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k] for k in a)
