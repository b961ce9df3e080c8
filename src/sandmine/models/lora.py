"""LoRA fine-tuning of an encoder with peft: low-rank adapters learn, the encoder's own weights do not.

`apply` puts peft's LoRA layers on the encoder of a `Segmenter` (the decoder always learns fully):
on the attention `qkv` projection of every block of a ViT (SatMAE's recipe for its group-channel
ViT), and on every ungrouped `nn.Conv2d` of a CNN (peft's Conv2d LoRA; depthwise and grouped
convolutions are left alone, as peft cannot merge their adapters). Everything else in the
encoder, its normalisation layers and embeddings included, is frozen. A training state saved
while adapters are on holds their weights and their optimiser state, so a resume is exact.

`merge` folds the trained adapters into the weights they adapt (W + alpha/rank · B·A) and removes
them, so the checkpoint is a plain model of the same keys as a full fine-tune: it loads with
`weights_only=True` and predicts without peft or extra compute.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from sandmine.core.errors import SandmineError
from sandmine.models import encoders as enc


def targets(encoder: nn.Module) -> list[str]:
    """Names (within `encoder`) of the modules that take adapters; empty when none fits.

    A ViT's attention `qkv` of every block; a CNN's ungrouped plain `nn.Conv2d` (a subclass, such as
    timm's same-padding convolution, computes what peft's adapter would not match).
    """
    if isinstance(encoder, enc.GroupedViT):
        return [n for n, m in encoder.named_modules() if n.endswith(".attn.qkv") and isinstance(m, nn.Linear)]
    return [n for n, m in encoder.named_modules() if type(m) is nn.Conv2d and m.groups == 1]


def apply(model: nn.Module, name: str, rank: int, alpha: int, dropout: float = 0.0) -> dict[str, Any]:
    """Put LoRA adapters on `model.encoder` in place and freeze the encoder's own weights.

    Args:
        model: a `Segmenter` (its decoder keeps learning).
        name: the encoder's name in params.yaml, for messages.
        rank, alpha, dropout: peft's `r`, `lora_alpha` and `lora_dropout`.

    Returns:
        What was adapted, for the checkpoint: rank, alpha, dropout and the number of adapted modules.

    Raises:
        SandmineError: the model has no encoder (a classical baseline) or no module peft can adapt.
    """
    from peft import LoraConfig, inject_adapter_in_model

    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise SandmineError(
            f"model.finetune: lora needs an encoder; '{name}' is a classical baseline",
            "params.yaml: model.finetune",
            "set model.finetune: full for a baseline",
        )
    names = targets(encoder)
    if not names:
        raise SandmineError(
            f"encoder '{name}' has no layer LoRA can adapt (peft adapts a ViT's attention qkv and a CNN's"
            " plain, ungrouped nn.Conv2d)",
            "params.yaml: model.finetune",
            f"set model.finetune to full or frozen, or pick an encoder with such layers: {', '.join(lora_encoders())}",
        )
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none")
    try:
        inject_adapter_in_model(config, encoder)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise SandmineError(
            f"peft cannot put LoRA adapters on encoder '{name}' ({exc})",
            "params.yaml: model.finetune",
            f"set model.finetune to full or frozen, or use one of: {', '.join(lora_encoders())}",
        ) from exc
    return {"rank": rank, "alpha": alpha, "dropout": dropout, "modules": len(names)}


def lora_encoders() -> list[str]:
    """The registered encoders that take adapters (all of them today)."""
    from sandmine.models import ENCODERS

    return list(ENCODERS)


def merge(model: nn.Module) -> int:
    """Fold every LoRA adapter of `model` into the weight it adapts and drop it (peft's merge and
    unload, in place); returns how many were merged. The weights are then the model's own keys."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    done = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge(safe_merge=True)  # safe: refuses adapters that turned the weights to NaN
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
            done += 1
    return done


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters of `model` as it trains (adapters included)."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
