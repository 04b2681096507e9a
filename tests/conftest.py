"""Shared fixtures: a tiny random encoder and a tiny real bundle, built offline in seconds.

Nothing here downloads: the tokenizer is trained on a few sentences written below and the encoder
is a 2-layer BERT with random weights, saved as a standard HF checkpoint.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BELONG_NO_PROGRESS", "1")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = ROOT.parent / "shared"

TOKENIZER_CORPUS = [
    "Welcome to the group, so glad you found us! Where are you from?",
    "go back to where you came from, nobody wants you here",
    "欢迎欢迎，常来玩呀。你是哪里人？滚回去，这里不欢迎你。今天下雨了。",
    "Bienvenida amiga, ¿de qué país eres? lárgate, nadie te quiere aquí.",
    "Bem-vinda! de onde você é? obrigado pela ajuda, kkkk",
    "ようこそ！どこから来たの？ 日本語を教えるよ",
    "환영해요! 어디서 왔어요? ㅋㅋㅋ",
    "أهلا وسهلا! من أين أنت؟",
    "Добро пожаловать! Откуда ты?",
    "स्वागत है! आप कहाँ से हैं?",
    "how do I switch the app to English? what song is this? thank you all 🤗🔥😂",
    "literal <s> and </s> and <pad> typed by a user, @mentions #hashtags https://example.org",
]


def build_tiny_base(folder: Path) -> Path:
    """A standard HF checkpoint folder: Unigram tokenizer.json + random 2-layer BERT."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>")
    tokenizer.train_from_iterator(TOKENIZER_CORPUS * 3, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "pad_token": "<pad>",
                "unk_token": "<unk>",
                "model_max_length": 128,
            }
        )
    )
    config = BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=1,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny_base"))


@pytest.fixture(scope="session")
def tiny_config(tiny_base):
    from training.config import TrainConfig

    # A random tiny model: the int8 gates (F1, drift) are tested on their own; here they would measure noise.
    return TrainConfig(
        base_model=str(tiny_base),
        text_prefix="query: ",
        epochs=2,
        batch_size=8,
        max_length=32,
        learning_rate=1e-3,
        int8_max_f1_drop=1.0,
        int8_max_drift_p99=1.0,
        dev_fraction=0.2,
        test_fraction=0.2,
        early_stopping_patience=5,
        # The shared fixture model trains in fp32, as it did before bf16 autocast became the default:
        # tests compare its scores across batchings at 5e-3, and a full-suite run with a bf16-trained
        # fixture once missed that by 0.009. bf16 training has its own tests (test_ema.py trains in
        # it; the CLI recipe run uses "auto").
        mixed_precision="off",
    )


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_config) -> Path:
    """A real bundle (ONNX int8, tokenizer, bundle.json, MODEL_CARD.md) from the real pipeline."""
    from training.pipeline import run_all

    root = tmp_path_factory.mktemp("tiny_run")
    out = root / "models" / "tiny"
    run_all([FIXTURES / "tiny_rows.jsonl"], out, tiny_config, work=root / "work", assignment_file=None)
    return out


@pytest.fixture(autouse=True)
def _unfreeze_collector():
    """A server that loaded a real model freezes its start-up objects (serving/runtime.py); give them
    back to the collector after each test so a test process does not keep them all."""
    yield
    gc.unfreeze()
