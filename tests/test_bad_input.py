"""Bad inputs end in one line naming the field, key or file and what was expected (issue 17).

Each case a new user ran into, and the ones handled before, so none regresses: config overrides
under every prefix, text fields given something other than one str per timestep, an id of the
wrong kind at an action position, the nested-key order of fields, the mode of written files, and
the CLI's one-line errors (with --debug for the traceback). Damaged checkpoints are in
test_checkpoint_integrity.py (they need a trained run).
"""

import os
import stat

import numpy as np
import pytest

import gatolab as gl
from gatolab import cli, io_utils
from gatolab.episode import Episode
from gatolab.gato_tokenizer import GatoTokenizer, TokenizerConfig
from gatolab.specs import EnvSpec, FieldSpec, flatten_fields


def _one_line_error(capsys, argv, *needles):
    """`gatolab ARGV` exits 2 with one `gatolab: error:` line holding every needle, and no traceback."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gatolab: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# --- config overrides: every prefix -----------------------------------------------------------
@pytest.mark.parametrize("override, needles", [
    ("mixture.bogus=1", ["unknown config key 'mixture.bogus'", "closest valid keys"]),
    ("batch_size=abc", ["batch_size: expected an int, got 'abc'"]),
    ("train.batch_size=abc", ["train.batch_size: expected an int, got 'abc'"]),
    ("model.bogus=1", ["unknown config key 'model.bogus'"]),
    ("optim.bogus=1", ["unknown config key 'optim.bogus'"]),
    ("data.bogus=1", ["unknown config key 'data.bogus'"]),
    ("bogus=1", ["unknown config key 'bogus'"]),
    ("steps", ["override 'steps': expected KEY=VALUE"]),
])
def test_config_overrides_fail_in_one_line(capsys, tmp_path, override, needles):
    _one_line_error(capsys, ["config", "show", "tiny", override], *needles)
    _one_line_error(capsys, ["train", "--out", str(tmp_path / "run"), override], *needles)  # before anything is built
    assert not (tmp_path / "run").exists()
    # an experiment's overrides may follow its options (argparse alone would reject them there)
    _one_line_error(capsys, ["ablate", "obs_encoding", "--out", str(tmp_path / "abl"), "--seeds", "1", override], *needles)
    assert not (tmp_path / "abl" / "cells").exists()


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(ValueError, match="unknown config key 'mixture.bogus'"):
        cli.main(["config", "show", "tiny", "mixture.bogus=1", "--debug"])
    with pytest.raises(ValueError, match="unknown config key 'mixture.bogus'"):
        cli.main(["--debug", "config", "show", "tiny", "mixture.bogus=1"])


def test_missing_files_fail_in_one_line(capsys, tmp_path):
    _one_line_error(capsys, ["eval", "--checkpoint", str(tmp_path / "nope"), "--tasks", "CartPole-v1"],
                    f"checkpoint '{tmp_path / 'nope'}' does not exist")
    _one_line_error(capsys, ["checkpoint", "verify", str(tmp_path / "nope")], f"'{tmp_path / 'nope'}' does not exist")
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, ["checkpoint", "verify", str(tmp_path / "empty")], "is not a run directory")
    with pytest.raises(ValueError, match=r"dataset .*manifest.json is missing"):
        gl.data.EpisodeDataset(tmp_path / "empty")


# --- text fields ------------------------------------------------------------------------------
SPEC = EnvSpec("t", {"mission": FieldSpec.text(), "state": FieldSpec.continuous((2,), -1, 1)},
               {"action": FieldSpec.continuous((2,), -1, 1)})
T = 3


@pytest.fixture(scope="module")
def tokenizer():
    return GatoTokenizer(TokenizerConfig(), text=gl.testing.small_text_tokenizer())


def _episode(mission):
    return Episode("t", {"mission": mission, "state": np.zeros((T, 2))}, {"action": np.zeros((T, 2))})


@pytest.mark.parametrize("mission, got", [
    (np.array([123] * T), "got int64 123 at timestep 0"),
    ([None] * T, "got NoneType None at timestep 0"),
    (["go", "to", 5], "got int 5 at timestep 2"),
    ([b"go"] * T, "got bytes_ b'go' at timestep 0; decode bytes to str first"),
])
def test_a_text_field_given_a_non_string_names_the_field(tokenizer, mission, got):
    with pytest.raises(ValueError, match=r"field 'mission': expected a str at each timestep \(a TEXT field\), ") as e:
        tokenizer.tokenize_episode(_episode(mission), SPEC)
    assert got in str(e.value)


def test_a_single_observation_with_a_non_string_text_names_the_field(tokenizer):
    with pytest.raises(ValueError, match="field 'mission': expected a str at each timestep .* got int64 123"):
        tokenizer.tokenize_observation({"mission": 123, "state": np.zeros(2)}, SPEC)


def test_a_single_string_for_a_per_timestep_field_names_it():
    with pytest.raises(ValueError, match=r"Episode 't': observations\['mission'\] is a single str \('go to the door'\); "
                                         r"expected one value per timestep"):
        _episode("go to the door")
    with pytest.raises(ValueError, match=r"actions\['action'\] is a single float"):
        Episode("t", {"state": np.zeros((T, 2))}, {"action": 0.5})


# --- decoding an action -----------------------------------------------------------------------
def test_decode_action_names_the_action_field(tokenizer):
    lo = tokenizer.vocab.continuous_offset
    with pytest.raises(ValueError, match=rf"action field 'action': id 5 at position 0 of 2 is not a continuous token "
                                         rf"\(expected ids in \[{lo}, {lo + 1024}\)\)"):
        tokenizer.decode_action(np.array([5, lo + 10]), SPEC)
    spec = EnvSpec("d", {"state": FieldSpec.continuous((1,))}, {"arm": {"grip": FieldSpec.discrete(3)}, "move": FieldSpec.discrete(4)})
    d = tokenizer.vocab.discrete_offset
    with pytest.raises(ValueError, match=r"action field 'move': id .* at position 0 of 1 is not a discrete \(values in \[0, 4\)\)"):
        tokenizer.decode_action(np.array([d + 1, d + 7]), spec)


# --- field order: by key path, not by the joined string ----------------------------------------
def test_field_order_follows_the_nested_keys():
    nested = {"arm": {"pos": FieldSpec.continuous((2,)), "vel": FieldSpec.continuous((2,))},
              "arm-vel": FieldSpec.continuous((1,)), "arm.z": FieldSpec.continuous(()), "arm_w": FieldSpec.continuous(())}
    want = ["arm/pos", "arm/vel", "arm-vel", "arm.z", "arm_w"]  # sorted(nested) visits "arm" first
    assert sorted("arm-vel arm/pos".split()) == ["arm-vel", "arm/pos"]  # what sorting the flat strings did
    spec = EnvSpec("t", nested, {"arm": {"x": FieldSpec.discrete(3)}, "arm-y": FieldSpec.discrete(3)})
    assert spec.observation_order == want and list(spec.observation) == want
    assert spec.action_order == ["arm/x", "arm-y"]
    flat = {k: v for k, v in reversed(list(flatten_fields(nested).items()))}
    assert list(flatten_fields(flat)) == want  # already flat: the same order as nested
    assert EnvSpec.from_json(spec.to_json()).observation_order == want
    # The tokens follow it: a field's tokens in timestep order.
    tok = GatoTokenizer(TokenizerConfig())
    obs = {"arm": {"pos": np.zeros((1, 2)), "vel": np.zeros((1, 2))}, "arm-vel": np.zeros((1, 1)),
           "arm.z": np.zeros(1), "arm_w": np.zeros(1)}
    seq = tok.tokenize_episode(Episode("t", obs, {"arm": {"x": np.zeros(1, int)}, "arm-y": np.zeros(1, int)}), spec)
    assert seq.field_names[:5] == tuple(want)
    assert list(seq.field[: 7]) == [0, 0, 1, 1, 2, 3, 4]


# --- written files get the umask's mode ---------------------------------------------------------
def test_atomic_writes_get_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    io_utils._umask.cache_clear()
    try:
        io_utils.atomic_write_json(tmp_path / "metrics.json", {"a": 1})
        with io_utils.atomic_directory(tmp_path / "shard") as d:
            (d / "x").write_text("x")
        assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o640
        assert stat.S_IMODE((tmp_path / "shard").stat().st_mode) == 0o750
    finally:
        os.umask(old)
        io_utils._umask.cache_clear()
    io_utils.atomic_write_text(tmp_path / "report.html", "<html/>")
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o666 & ~old
