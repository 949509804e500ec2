"""The settings a fidelity measurement compares: proxy settings parsed from the command
line or a file, how they are described, and how far a ranking at them was measured to be
trusted."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..training.fields import read_mapping_file
from ..training.proxy import ProxySettings


def proxy_name(index: int) -> str:
    """The name of the index-th --proxy setting: proxy, proxy2, proxy3, ..."""
    return "proxy" if index == 0 else f"proxy{index + 1}"
# ------------------------------------------------------------------------------ settings
def parse_settings(text: str, base: Any = None, flag: str = "--proxy",
                   kind: type = ProxySettings) -> Any:
    """``default`` (``base`` as it is), ``key=value,key=value`` (``base`` with those settings
    changed) or the path of a YAML file holding such a mapping, as a ``kind`` settings
    dataclass (ProxySettings or SupernetSettings). ``base`` defaults to ``kind()``; errors
    name ``flag``."""
    base = base or kind()
    text = text.strip()
    if text == "default":
        return base
    if "=" in text:
        overrides = parse_pairs(text, flag)
    elif Path(text).is_file():
        overrides = read_settings_file(Path(text), flag)
    else:
        raise UserError(f"{flag} {text!r} is neither 'default', key=value pairs (e.g. "
                        f"epochs=12,width=0.5) nor an existing YAML file; give one of those.")
    try:
        return kind.from_dict({**base.to_dict(), **overrides})
    except UserError as exc:
        raise UserError(f"{flag} {text!r}: {exc}") from None


def parse_pairs(text: str, flag: str) -> dict[str, Any]:
    """``epochs=12,width=0.5,strategy=fair`` to {'epochs': 12, 'width': 0.5, 'strategy':
    'fair'}: numbers, true/false, else the text (the settings class checks each type)."""
    pairs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, equals, value = part.partition("=")
        if not equals or not key.strip() or not value.strip():
            raise UserError(f"{flag} {text!r}: {part!r} is not key=value; write the settings "
                            f"as key=value pairs separated by commas, e.g. epochs=12,width=0.5.")
        pairs[key.strip().replace("-", "_")] = parse_value(value.strip())
    return pairs


def parse_value(value: str) -> int | float | bool | str:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(value.lower(), value)


def read_settings_file(path: Path, flag: str) -> dict[str, Any]:
    def unreadable(exc: Exception) -> str:
        return (f"{flag} {path}: cannot read it as YAML ({exc}); give a YAML mapping of proxy "
                f"settings, e.g. 'epochs: 12'.")

    data = read_mapping_file(path, unreadable, unreadable,
                             f"{flag} {path} must hold a mapping of proxy settings to values, "
                             f"e.g. 'epochs: 12'.")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def describe_settings(settings: ProxySettings) -> str:
    return (f"width {settings.width}, {settings.resolution}px, {settings.epochs} epochs, "
            f"{settings.train_samples} train / {settings.val_samples} val images, batch "
            f"{settings.batch_size}, lr {settings.lr}")


# --------------------------------------------------------------------------- trust warning
# Measured (docs/fidelity.md: fashion-mnist, iformer_small ramps near 4.8 GFLOPs): up to
# these settings one seed per ramp does not rank ramps reliably, and no setting measured
# (5,000 to 30,000 images, 1 to 12 epochs) agreed with a reference trained on all 60,000
# images at Kendall tau TRUST_TAU.
# Settings higher in any of these were not measured: no warning.
TRUST_TAU = 0.6
MEASURED_UNTRUSTED = {"epochs": 12, "width": 0.25, "resolution": 64, "train_samples": 30000}


def trust_warning(settings: ProxySettings, data: str = "fashion-mnist") -> str | None:
    """What was measured of a ranking at ``settings`` on ``data``. On Fashion-MNIST: a
    warning when the settings are nowhere above the range measured not to reach Kendall tau
    TRUST_TAU (MEASURED_UNTRUSTED), None when any of them is higher. On Imagenette: what its
    20-ramp measurement found. On any other data: that no measurement there backs the
    ranking."""
    if data == "fashion-mnist":
        if any(getattr(settings, name) > most for name, most in MEASURED_UNTRUSTED.items()):
            return None
        text = ("warning    at these proxy settings a ranking speaks of the proxy. Measured on "
                "fashion-mnist with 10 ramps near the budget and 3 paired seeds "
                "(docs/fidelity.md): the validation-loss ranking has a seed-blocked "
                "reliability of 0.70 for one seed and 0.82 for two, yet it did not agree with "
                "a reference trained on all 60,000 images whose own reliability is 0.80 "
                "(Kendall tau -0.02, 95% interval -0.50 to +0.51, where a proxy ranking like "
                "the reference would reach +0.63; the parameter count alone reached +0.20); of "
                "the four ramps the proxy called better than the paper's, three were not "
                "separated from it there. The race after the search says better, worse, "
                "equivalent or not separated under this proxy, seed by seed; a verdict about "
                "ImageNet needs ImageNet photographs (--data imagenette, or `rampsearch data "
                "prepare` and --data).")
    elif data == "imagenette":
        text = ("note       on imagenette, 20 ramps against a reference trained on the whole "
                "train split four times at 96 px with 3 seeds (docs/fidelity.md): this "
                "proxy's validation-loss ranking is reproducible (seed-blocked reliability 0.56 "
                "for one seed, 0.79 for three), but the reference's is not (reliability 0.00 "
                "at 3 seeds): at that length the ramps differ by less than one seed's "
                "noise, so nothing measured yet says whether this ranking carries over to "
                "longer training. A ranking, and the race's verdict, speak of this proxy on "
                "these images.")
    else:
        text = (f"note       on {data} no measurement says how far this proxy's ranking agrees "
                f"with longer training (docs/fidelity.md measured Fashion-MNIST and "
                f"Imagenette). A ranking, and the race's verdict, speak of this proxy on "
                f"these images.")
    return textwrap.fill(text, width=100, subsequent_indent=" " * 11)


def supernet_note() -> str:
    """What was measured of supernet scores (docs/oneshot.md), for a one-shot run's plan."""
    text = ("note       supernet scores, measured on 20 imagenette ramps (docs/oneshot.md): "
            "reproducible across supernet seeds (reliability 0.93 for one, at the default "
            "settings), but within the space and budget they searched they ranked ramps "
            "little like the stand-alone proxy (Kendall tau +0.12), a longer reference could "
            "not judge them (its own ranking was seed noise), and ramps outside them score "
            "far worse than stand-alone training says (the paper's ramp, over 4.8 GFLOPs, "
            "too). The search is a cheap shortlist; the race that follows trains it "
            "stand-alone.")
    return textwrap.fill(text, width=100, subsequent_indent=" " * 11)
