"""Model files prove they are whole: every weights file written gets a sha256 sidecar, every
reader checks it, and every model-file error names the file and says what to do (fast tests;
the workflow-level versions are in test_workflow_faults.py)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dplm2.io.weights import CorruptWeightsError, checksum_path, record_checksum, verify_weights
from tests.lm.helpers import tiny_model as tiny_lm
from tests.tokenizer.conftest import TINY_MODEL

REPO = Path(__file__).resolve().parents[2]


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 256] = bytes(b ^ 0x5A for b in data[mid : mid + 256])
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture
def tokenizer_folder(tmp_path) -> Path:
    from dplm2.tokenizer.config import LossConfig, ModelConfig
    from dplm2.tokenizer.hub import save_tokenizer
    from dplm2.tokenizer.model import StructureTokenizer

    torch.manual_seed(0)
    return save_tokenizer(StructureTokenizer(ModelConfig.from_dict(dict(**TINY_MODEL)), LossConfig.from_dict()),
                          tmp_path / "tok")


@pytest.mark.parametrize("damage", [_garble, _truncate])
def test_damaged_tokenizer_weights_are_refused_naming_the_file(tokenizer_folder, damage):
    from dplm2.tokenizer.hub import load_tokenizer

    weights = tokenizer_folder / "model.safetensors"
    _, digest = load_tokenizer(tokenizer_folder)
    assert checksum_path(weights).read_text() == f"{digest}  model.safetensors\n"
    damage(weights)
    with pytest.raises(CorruptWeightsError, match=f"{weights}: .*corrupted weights.*--forcerun"):
        load_tokenizer(tokenizer_folder)


def test_truncated_weights_without_a_sidecar_name_the_file(tokenizer_folder):
    """Weights from elsewhere (no .sha256): safetensors' own error, restated with the path."""
    from dplm2.tokenizer.hub import load_tokenizer

    weights = tokenizer_folder / "model.safetensors"
    checksum_path(weights).unlink()
    _truncate(weights)
    with pytest.raises(ValueError, match=f"{weights}: cannot read these weights"):
        load_tokenizer(tokenizer_folder)


@pytest.mark.parametrize("damage", [_garble, _truncate])
def test_damaged_lm_weights_are_refused_naming_the_file(tmp_path, damage):
    from dplm2.lm.load import load_lm

    tiny_lm().save_pretrained(tmp_path / "lm")
    weights = tmp_path / "lm" / "model.safetensors"
    assert verify_weights(weights) == checksum_path(weights).read_text().split()[0]
    load_lm(tmp_path / "lm")
    damage(weights)
    with pytest.raises(CorruptWeightsError, match=f"{weights}: "):
        load_lm(tmp_path / "lm")


def test_a_short_write_is_never_recorded_as_whole(tmp_path):
    """A full disk can leave a short file without an error from the writer: the checksum is
    recorded only for a complete safetensors file."""
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(1000)}, str(path))
    _truncate(path)
    with pytest.raises(CorruptWeightsError, match="truncated"):
        record_checksum(path)
    assert not checksum_path(path).exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/dplm2-pwned-warm-start",))


def test_warm_start_refusing_a_pickle_names_the_file(tmp_path):
    from dplm2.lm.warm_start import InitConfig, build_network

    src = tmp_path / "esm"
    tiny_lm().net.config.save_pretrained(src)
    (src / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Evil()}))
    with pytest.raises((ValueError, FileNotFoundError), match=str(src / "pytorch_model.bin")):
        build_network(InitConfig.from_dict({"source": str(src)}))
    assert not os.path.exists("/tmp/dplm2-pwned-warm-start")


# --- the lifeline: no job outlives the Snakemake process that started it ------------------------
def test_job_stops_when_the_watched_process_dies(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    env = {**os.environ, "DPLM2_STOP_WITH_PID": str(parent.pid),
           "PYTHONPATH": str(REPO / "src")}
    # a stand-in for a long training, through the CLI's own signal handling and lifeline
    child = subprocess.Popen([sys.executable, "-c", _STANDIN], env=env, text=True,
                             stderr=subprocess.PIPE)
    time.sleep(1.5)
    assert child.poll() is None, child.stderr.read()
    parent.kill()
    parent.wait()
    try:
        rc = child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    err = child.stderr.read()
    assert rc == 143, err
    assert f"process {parent.pid} that started this job has ended" in err
    assert "stopped by SIGTERM" in err


_STANDIN = """
import argparse, sys, time
from dplm2 import cli

def build_parser():
    p = argparse.ArgumentParser()
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=lambda args: time.sleep(120))
    return p

cli.build_parser = build_parser
sys.exit(cli.main())
"""


def test_sigterm_ends_a_command_cleanly():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen([sys.executable, "-c", _STANDIN], env=env, text=True,
                             stderr=subprocess.PIPE)
    time.sleep(1.5)
    child.send_signal(signal.SIGTERM)
    rc = child.wait(timeout=10)
    err = child.stderr.read()
    assert rc == 143 and "stopped by SIGTERM" in err and "Traceback" not in err, err


def test_ctrl_c_then_snakemakes_sigterm_is_one_clean_stop():
    """Ctrl-C in a terminal reaches the job itself and, through Snakemake (common.smk), as a
    SIGTERM right after: one message, no traceback."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen([sys.executable, "-c", _STANDIN], env=env, text=True,
                             stderr=subprocess.PIPE)
    time.sleep(1.5)
    child.send_signal(signal.SIGINT)
    time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    rc = child.wait(timeout=10)
    err = child.stderr.read()
    assert rc in (130, 143) and err.count("stopped by") == 1 and "Traceback" not in err, err
