"""Space files: the built-ins, a user's own, and every kind of mistake with its line."""

from __future__ import annotations

import pytest

import search_spaces
from iformer import IFormerConfig
from search_spaces import SpaceError, load_space, read_space_file


def write(tmp_path, text: str, name: str = "my_space.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_builtin_files_are_package_data_and_load_on_every_preset():
    for name in search_spaces.space_names():
        for base in ("iformer_small", "iformer_base", "iformer_large"):
            space = load_space(name, base=base)
            assert space.name == name and space.family == name
            assert space.base_name == base and space.allow_ends
            low, high = space.flops_range()
            assert 0 < low < high


def test_a_user_file_with_every_key(tmp_path):
    model = tmp_path / "models" / "narrow.yaml"
    model.parent.mkdir()
    IFormerConfig(depths=[1, 1, 2, 1], embed_dims=[12, 12, 16, 20], num_heads=[3, 3, 4, 5],
                  attention_heads=[1, 1, 2, 3, 4]).save(model)
    path = write(tmp_path, """
name: narrow_monotone
description: a user's space
family: monotone
base: models/narrow.yaml      # relative to this file
allow_ends: false
stages:
  1: {min_heads: 1, max_heads: 1}
  4: {min_high_ratio: 0.2, max_high_ratio: 0.4}
fixed:
  2: 2
""")
    space = load_space(path)
    assert (space.name, space.family, space.description) == ("narrow_monotone", "monotone",
                                                             "a user's space")
    assert space.base.depths == [1, 1, 2, 1] and space.base_name.endswith("narrow.yaml")
    assert not space.allow_ends
    assert space.bounds == ((1, 1), (1, 2), (2, 2), (1, 3), (3, 4))
    assert sorted(space.param_names()) == ["b01_s2", "b03_s3", "b04_s4"]
    assert load_space(path, allow_ends=True).allow_ends
    # --base replaces the file's base; the file's bounds then apply to that model.
    assert load_space(path, base="iformer_small").base_name == "iformer_small"


def test_smooth_options_from_a_file(tmp_path):
    path = write(tmp_path, "family: smooth\nsmooth: {ratio_step: 0.1, max_steepness: 8,"
                           " steepness_step: 4}\n")
    space = load_space(path)
    assert space.grids[0] == tuple(round(i / 10, 10) for i in range(11))
    assert space.grids[3] == (0.0, 4.0, 8.0)


@pytest.mark.parametrize("text, line, says", [
    ("family: monotone\nstage:\n  1: {min_heads: 1}\n", 2, "stage is not a key of a space "
     "file; did you mean 'stages'"),
    ("family: mono\n", 1, "family 'mono' is not one of free, monotone, stagewise, smooth"),
    ("base: iformer_small\nallow_ends: maybe\nfamily: free\n", 2, "allow_ends must be true or "
     "false"),
    ("family: free\nstages:\n  3:\n    max_heads: 11\n", 4, "stages.3.max_heads is 11, but "
     "stage 3 of this base has 10 heads"),
    ("family: free\nstages:\n  5: {max_heads: 1}\n", 3, "stages.5 is not a stage number 1 to 4"),
    ("family: free\nstages:\n  2: {min_heads: 4, max_heads: 2}\n", 3, "stages.2 leaves no head "
     "count for stage 2"),
    ("family: free\nstages:\n  2: {max_high_ratio: 1.5}\n", 3, "stages.2.max_high_ratio must be "
     "a C_h/C ratio between 0 and 1"),
    ("family: free\nstages:\n  2: {min_heads: 1, max_high_ratio: 0.5}\n", 3,
     "stages.2.max_high_ratio bounds the same side as stages.2.min_heads"),
    ("family: free\nstages:\n  2: {min_head: 1}\n", 3, "did you mean 'min_heads'"),
    ("family: free\nfixed:\n  0: 1\n  18: 3\n", 4, "fixed.18 names a block this base does not "
     "have; blocks are 0 to 17"),
    ("family: free\nfixed:\n  0: 4\n", 3, "fixed.0 is 4, but block 0 has 3 heads"),
    ("family: free\nfixed:\n  0: -1\n", 3, "fixed.0 must be a whole number"),
    ("family: free\nfixed: [1, 2]\n", 2, "fixed must be a mapping"),
    ("family: free\nbase: iformer_huge\n", 2, "base names no model: unknown iFormer preset"),
    ("family: free\nsmooth: {ratio_step: 0.05}\n", 2, "smooth options apply only to 'family: "
     "smooth'"),
    ("family: smooth\nsmooth:\n  ratio_step: 0.3\n", 3, "smooth.ratio_step must divide 1"),
    ("family: smooth\nsmooth:\n  steps: 3\n", 3, "smooth.steps is not a key of smooth"),
    ("family: free\nfamily: monotone\n", 2, "family is given twice"),
    ("family: free\nstages: {1: {min_heads: 1}\n", 3, "not valid YAML"),
    ("family: free\nallow_ends: false\nstages: {1: {}}\n", None, None),
    ("- free\n- monotone\n", 1, "the file must be a mapping of keys"),
    ("family: monotone\nfixed: {0: 3}\nstages: {2: {max_heads: 1}}\n", None, "has no ramp"),
])
def test_a_space_file_with_a_mistake_names_the_key_and_the_line(tmp_path, text, line, says):
    path = write(tmp_path, text)
    if says is None:
        load_space(path)  # an empty bounds entry is fine
        return
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert path in message
    if line is not None:
        assert f"{path}, line {line}:" in message
    assert says in message
    assert "\n" not in message


def test_allow_ends_false_on_a_one_head_stage(tmp_path):
    config = IFormerConfig(depths=[1, 1, 1, 1], embed_dims=[8, 8, 8, 8], num_heads=[1, 2, 2, 2],
                           attention_heads=[1, 1, 1, 1])
    path = write(tmp_path, "family: free\nallow_ends: false\n")
    with pytest.raises(SpaceError, match="line 2: allow_ends is false, which leaves no head "
                                         "count for stage 1"):
        load_space(path, base=config)
    fixed = write(tmp_path, "family: free\nallow_ends: false\n"
                            "stages: {1: {min_heads: 0, max_heads: 1}}\n", name="fixed.yaml")
    assert load_space(fixed, base=config).bounds[0] == (0, 1)


def test_empty_missing_and_unreadable_files(tmp_path):
    with pytest.raises(SpaceError, match="is empty"):
        load_space(write(tmp_path, "# nothing\n"))
    with pytest.raises(SpaceError, match="'family' is missing"):
        load_space(write(tmp_path, "base: iformer_small\n", name="b.yaml"))
    with pytest.raises(SpaceError, match="there is no space"):
        load_space(str(tmp_path / "absent.yaml"))
    with pytest.raises(SpaceError, match="cannot read space file"):
        read_space_file(tmp_path)
