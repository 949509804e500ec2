"""The Inception Transformer (iFormer) with a per-block frequency ramp.

Importing this package registers ``iformer_small``, ``iformer_base``, ``iformer_large`` and
their ``_384`` variants with timm. (timm's own ``iformer_t/s/m/l/l2/h`` are a different,
unrelated 2025 mobile network.) :class:`IFormerSupernet` holds every ramp of a config in one
weight-sharing network.
"""

from .config import (
    PAPER_DROP_PATH,
    PAPER_TOP1,
    PRESET_NAMES,
    BlockSpec,
    ConfigError,
    IFormerConfig,
    load_config,
    parse_image_size,
    preset,
    preset_name,
)
from .flops import (
    FlopsBreakdown,
    RampCostTable,
    count_flops,
    count_params,
    flops_breakdown,
    ramp_cost_table,
    stage_grids,
)
from .model import InceptionTransformer, checkpoint_filter_fn, set_fused_attn
from .supernet import IFormerSupernet


def create_model(config: IFormerConfig) -> InceptionTransformer:
    """The model of a config, without going through timm's registry."""
    return InceptionTransformer(config)


def create_model_from_file(path: str) -> InceptionTransformer:
    """The model described by a YAML or JSON config file (``model.yaml`` of an export)."""
    return InceptionTransformer(IFormerConfig.load(path))


__all__ = [
    "PAPER_DROP_PATH", "PAPER_TOP1", "PRESET_NAMES", "BlockSpec", "ConfigError",
    "FlopsBreakdown", "IFormerConfig", "IFormerSupernet", "InceptionTransformer", "RampCostTable",
    "checkpoint_filter_fn", "count_flops", "count_params", "create_model",
    "create_model_from_file", "flops_breakdown", "load_config", "parse_image_size", "preset",
    "preset_name", "ramp_cost_table",
    "set_fused_attn", "stage_grids",
]
