"""The one coerce/check helper behind ProxySettings and TrainRecipe."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rampsearch.errors import UserError
from rampsearch.training.fields import check_ranges, field_values, unknown_keys
from rampsearch.training.proxy import ProxySettings
from rampsearch.training.recipe import TrainRecipe


@dataclass
class Example:
    count: int = 1
    rate: float = 0.5
    name: str = "x"
    flag: bool = False
    clip: float | None = None
    sizes: list[int] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)


def test_values_are_coerced_to_their_field_types() -> None:
    values = field_values(Example, {"count": 3.0, "rate": 2, "clip": None, "sizes": [1, 2.0],
                                    "extra": {"a": 1}, "flag": True}, where="example:")
    assert values == {"count": 3, "rate": 2.0, "clip": None, "sizes": [1, 2],
                      "extra": {"a": 1}, "flag": True}
    assert type(values["count"]) is int and type(values["rate"]) is float
    assert field_values(Example, {"clip": 1}, where="example:")["clip"] == 1.0
    assert unknown_keys(Example, {"count": 1, "colour": 2, "age": 3}) == ["age", "colour"]


@pytest.mark.parametrize("data, message", [
    ({"count": 1.5}, "example: count is 1.5; count must be an integer."),
    ({"count": True}, "example: count is True; count must be an integer."),
    ({"rate": "fast"}, "example: rate is 'fast'; rate must be a number."),
    ({"name": 3}, "example: name is 3; name must be a string."),
    ({"flag": "yes"}, "example: flag is 'yes'; flag must be true or false."),
    ({"sizes": "1,2"}, "example: sizes is '1,2'; sizes must be a list, e.g. sizes: [1, 2]."),
    ({"sizes": [1, "a"]}, "example: sizes is 'a'; sizes must be an integer."),
    ({"extra": [1]}, "example: extra is [1]; extra must be a mapping of names to values."),
])
def test_a_value_of_the_wrong_type_names_field_and_fix(data, message) -> None:
    with pytest.raises(UserError) as caught:
        field_values(Example, data, where="example:")
    assert str(caught.value) == message


def test_the_first_failed_range_check_is_raised() -> None:
    example = Example(count=0, rate=-1.0)
    check_ranges(example, [(True, "count", "at least 1")], where="example:")
    with pytest.raises(UserError, match=r"^example: count is 0; use at least 1\.$"):
        check_ranges(example, [(example.count >= 1, "count", "at least 1"),
                               (example.rate > 0, "rate", "a positive rate")], where="example:")


def test_proxy_settings_and_recipe_read_values_the_same_way() -> None:
    with pytest.raises(UserError, match="proxy setting epochs is 'four'; epochs must be an "):
        ProxySettings.from_dict({"epochs": "four"})
    with pytest.raises(UserError, match="train.yaml: epochs is 'four'; epochs must be an "):
        TrainRecipe.from_dict({"model": "iformer_small", "epochs": "four"}, source="train.yaml")
    with pytest.raises(UserError, match="train.yaml: cutmix is -1.0; use an alpha of at least"):
        TrainRecipe.from_dict({"model": "iformer_small", "cutmix": -1}, source="train.yaml")
