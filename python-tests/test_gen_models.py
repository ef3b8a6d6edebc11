"""gen_models.py: the CLI writes loadable models and a manifest that describes them."""

from __future__ import annotations

import json

import onnx
import pytest

import gen_models
import models


def test_writes_models_and_manifest(tmp_path, capsys):
    assert gen_models.main([str(tmp_path), "-m", "mlp,char_rnn", "--batch", "1", "--seed", "3"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == {"mlp", "char_rnn"}
    for name, entry in manifest.items():
        model = onnx.load(str(tmp_path / entry["file"]))
        assert model.ir_version == models.IR_VERSION
        onnx.checker.check_model(model)
        assert entry["inputs"][0]["shape"][0] == 1 and entry["inputs"][0]["dtype"] == "float32"
        assert entry["heavy_ops"] == models.count_ops(model)
        assert model.SerializeToString() == models.build(name, batch=1, seed=3).SerializeToString()
    # a second run adds to the manifest
    assert gen_models.main([str(tmp_path), "-m", "mobilenet_v1", "--size", "32"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest) == {"mlp", "char_rnn", "mobilenet_v1"}
    assert manifest["mobilenet_v1"]["inputs"][0]["shape"] == ["N", 3, 32, 32]


def test_list_and_errors(tmp_path, capsys):
    assert gen_models.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in models.MODELS:
        assert name in out
    with pytest.raises(SystemExit):
        gen_models.main([str(tmp_path), "-m", "nosuchnet"])
    assert "nosuchnet" in capsys.readouterr().err
