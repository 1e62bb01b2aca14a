"""Each output type is declared once: the union pydantic validates with names the registry's models."""

from __future__ import annotations

from typing import get_args

from monitor.outputs import OUTPUT_MODELS, REGISTRY, OutputConfig


def test_the_config_union_is_the_registry() -> None:
    union = get_args(get_args(OutputConfig)[0])
    assert set(union) == set(OUTPUT_MODELS.values())
    for kind, (model, _) in REGISTRY.items():
        assert get_args(model.model_fields["type"].annotation) == (kind,)
