"""dplm2.io.hub.model_files: the one resolver of "folder or hub id" every loader uses."""

from __future__ import annotations

import pytest

from dplm2.io.hub import MissingHubFile, model_files


def _folder(root, *names):
    root.mkdir()
    for n in names:
        (root / n).write_text(n)
    return root


def test_folder_files_preference_and_errors_naming_the_file(tmp_path):
    src = _folder(tmp_path / "m", "config.json", "model.safetensors", "pytorch_model.bin")
    got = model_files(src, ["config.json"], one_of=["model.safetensors", "pytorch_model.bin"],
                      optional=["vocab.txt"])
    assert got == {"config.json": src / "config.json", "vocab.txt": None,
                   "one_of": src / "model.safetensors"}
    with pytest.raises(FileNotFoundError, match=r"m/tokenizer\.json: missing \(a test folder needs"):
        model_files(src, ["tokenizer.json"], what="a test folder")
    with pytest.raises(FileNotFoundError, match="no weights file"):
        model_files(src, [], one_of=["x.safetensors"])
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        model_files(src / "config.json", ["config.json"])
    with pytest.raises(FileNotFoundError, match="neither an existing folder nor a hub id"):
        model_files(tmp_path / "absent", ["config.json"])


def test_hub_fetches_only_the_named_files_and_names_what_is_missing(tmp_path, fake_hub):
    asked = fake_hub(_folder(tmp_path / "hub", "config.json", "pytorch_model.bin"))
    got = model_files("owner/model@v1", ["config.json"], optional=["vocab.txt"],
                      one_of=["model.safetensors", "pytorch_model.bin"])
    assert got["vocab.txt"] is None and got["one_of"].name == "pytorch_model.bin"
    assert asked == [("owner/model", f, "v1") for f in
                     ("config.json", "vocab.txt", "model.safetensors", "pytorch_model.bin")]
    with pytest.raises(MissingHubFile, match=r"owner/model@v1: the hub repository has no "
                                                r"tokenizer\.json \(a test model\)"):
        model_files("owner/model@v1", ["tokenizer.json"], what="a test model")
    with pytest.raises(FileNotFoundError, match=r"owner/model: has neither of"):
        model_files("owner/model", [], one_of=["x.safetensors"])
