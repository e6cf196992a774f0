"""Typed configuration: every value checked against its declared type at load time, errors naming the key."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spp_det.config import FinetuneConfig, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("section, key, value, expect", [
    ("finetune", "iterations", "abc", r"finetune\.iterations: should be a valid integer.*got 'abc'"),
    ("finetune", "iterations", 1.5, r"finetune\.iterations: should be a valid integer.*got 1\.5"),
    ("model", "scales", "688", r"model\.scales: should be a valid list \(got '688'\)"),
    ("model", "scales", [688, "x"], r"model\.scales\[1\]: should be a valid integer"),
    ("svm", "C", "abc", r"svm\.C: should be a valid number.*got 'abc'"),
    ("bbox_reg", "enabled", "maybe", r"bbox_reg\.enabled: should be a valid boolean"),
    ("model", "projection", "middle", r"model\.projection: should be 'paper' or 'offset' \(got 'middle'\)"),
    ("test", "fc_dtype", "float16", r"test\.fc_dtype: should be 'float32' or 'bfloat16'"),
    ("finetune", "lr_policy", "poly", r"finetune\.lr_policy: should be 'step' or 'cosine'"),
    ("dataset", "classes", "cat", r"dataset\.classes: should be a valid list"),
    ("svm", "Cx", 1, r"unknown key svm\.Cx \(known: C, pos_weight"),
])
def test_a_wrong_value_names_the_key_the_value_and_the_type(section, key, value, expect):
    with pytest.raises(ValueError, match=expect):
        config_from_dict({section: {key: value}})


def test_exact_conversions_are_made_and_give_the_declared_types():
    cfg = config_from_dict({"finetune": {"iterations": "60", "base_lr": "1e-4"}, "svm": {"C": 1},
                            "model": {"scales": ["480", 688]}})
    assert cfg.finetune.iterations == 60 and type(cfg.finetune.iterations) is int
    assert cfg.finetune.base_lr == 1e-4 and type(cfg.finetune.base_lr) is float  # YAML 1.1 reads 1e-4 as a string
    assert type(cfg.svm.C) is float and cfg.model.scales == [480, 688]
    assert isinstance(cfg.finetune, FinetuneConfig) and cfg.dataset.generate is None


def test_yaml_inherit_and_set_are_checked_alike(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"svm": {"C": "lots"}}))
    child = tmp_path / "child.yaml"
    child.write_text("inherit: base.yaml\nseed: 1\n")
    with pytest.raises(ValueError, match=r"child\.yaml: config: svm\.C: should be a valid number"):
        load_config(child)
    assert load_config(child, ["svm.C=1e-3"]).svm.C == 1e-3
    with pytest.raises(ValueError, match="override 'seed.x=1': seed is a value, not a section"):
        load_config(child, ["svm.C=1e-3", "seed.x=1"])
    with pytest.raises(ValueError, match="override 'svm.C=\\[': the value is not valid YAML"):
        load_config(child, ["svm.C=["])


def test_the_tools_report_a_bad_value_in_one_line_before_any_work(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"inherit: {ROOT / 'configs' / 'demo.yaml'}\nworkdir: {tmp_path / 'w'}\n")
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "run_pipeline.py"), "--config", str(cfg), "--set",
                        "finetune.iterations=sixty", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "finetune.iterations" in lines[0] and "'sixty'" in lines[0], p.stderr
    assert not (tmp_path / "w").exists()  # nothing was started
