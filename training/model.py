"""The tagger network: a pretrained encoder, pooling, and one logit per tag.

Mean pooling by default: e5 was pretrained with mean pooling and has no trained pooler or CLS
objective, so the mean of token states is where its sentence meaning lives.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from training.config import TrainConfig

log = logging.getLogger(__name__)

POOLER_MODELS = {"bert", "xlm-roberta", "roberta", "camembert"}


class Tagger(nn.Module):
    def __init__(self, encoder: nn.Module, hidden_size: int, num_labels: int, pooling: str, dropout: float):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Explicit zeros: some exporters otherwise bake a fixed-length token_type buffer into the graph.
        token_type_ids = torch.zeros_like(input_ids)
        states = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        if self.pooling == "cls":
            pooled = states[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


def build_tagger(config: TrainConfig) -> Tagger:
    """Load the base encoder (any HF id or local path) and put a fresh head on it."""
    from transformers import AutoConfig, AutoModel

    encoder_config = AutoConfig.from_pretrained(config.base_model)
    # BERT-family models otherwise build an unused, randomly initialised pooler.
    pooler_off = {"add_pooling_layer": False} if encoder_config.model_type in POOLER_MODELS else {}
    encoder = AutoModel.from_pretrained(config.base_model, **pooler_off)
    model = Tagger(encoder, encoder_config.hidden_size, len(config.labels), config.pooling, config.dropout)
    if config.freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    if config.freeze_layers:
        layers = getattr(getattr(encoder, "encoder", None), "layer", None)
        if layers is None or config.freeze_layers > len(layers):
            raise ValueError(
                f"freeze_layers={config.freeze_layers}: {config.base_model} has "
                f"{'no encoder.layer list' if layers is None else f'{len(layers)} layers'}"
            )
        for layer in layers[: config.freeze_layers]:
            layer.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log.info("model %s: %.1fM parameters, %.1fM trainable", config.base_model, total / 1e6, trainable / 1e6)
    return model


def save_base_tokenizer(base_model: str, out_path: Path) -> Path:
    """Write the base model's fast tokenizer as tokenizer.json: the file training and serving share."""
    local = Path(base_model) / "tokenizer.json"
    if local.is_file():
        spec = json.loads(local.read_text(encoding="utf-8"))
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base_model)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{base_model}: a fast tokenizer (tokenizer.json) is needed for serving")
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
    out_path.write_text(json.dumps(unmatchable_special_pieces(spec), ensure_ascii=False), encoding="utf-8")
    return out_path


def unmatchable_special_pieces(spec: dict) -> dict:
    """Stop a Unigram lattice from reading "<s>" typed in a comment as the control token.

    SentencePiece never matches control pieces from text, but tokenizers' Unigram keeps them in its
    vocabulary with score 0 (the best score), so literal "<s>" became id 0. A hugely negative score
    makes the lattice spell it from ordinary pieces, as SentencePiece does; the post-processor still
    adds the real control tokens by id.
    """
    model = spec.get("model", {})
    if model.get("type") != "Unigram":
        return spec
    special = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
    unk_id = model.get("unk_id")
    model["vocab"] = [
        [piece, -1e6 if piece in special and index != unk_id else score]
        for index, (piece, score) in enumerate(model["vocab"])
    ]
    return spec


def save_checkpoint(path: Path, model: Tagger, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), **state}, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


def load_model_state(path: Path, model: Tagger) -> dict:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["model"])
    return checkpoint


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
