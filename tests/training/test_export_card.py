"""The model card states the vocabulary and quantization choices with their measured effect."""

from training.model_card import _size_section

METRICS = {
    "vocabulary": {
        "kept": 76508,
        "full": 250002,
        "used_by_corpus": 68446,
        "fit_comments": 136913,
        "single_character_fallback": 8062,
        "holdout_coverage": {"ja": {"comments": 120, "token_coverage": 0.9871, "comments_unchanged": 0.9}},
        "dev_fp32": {"dev_macro_f1_fp32": 0.7699, "dev_macro_f1_int8": 0.7689, "drift_max": 0.74, "drift_p99": 0.084},
    },
    "int8": {
        "matmuls_int8": 72,
        "per_token_matmuls": ["a"] * 72,
        "embedding": "q4_0 blocks of 32",
        "embedding_max_abs_error": 0.0,
        "dev_macro_f1_fp32": 0.7699,
        "dev_macro_f1_int8": 0.7741,
        "max_drop": 0.005,
        "max_drift_p99": 0.1,
        "rows": 1500,
        "drift_max": 0.21,
        "drift_p99": 0.065,
        "drift_mean": 0.004,
        "reference": "fp32 with the served vocabulary",
        "against_full_fp32": {
            "dev_macro_f1_fp32": 0.7699,
            "dev_macro_f1_int8": 0.7647,
            "drift_max": 0.743,
            "drift_p99": 0.084,
            "drift_mean": 0.0125,
        },
    },
}


def test_card_states_vocabulary_coverage_and_int8_effect():
    text = "\n".join(_size_section(METRICS))
    assert "76,508 of 250,002 pieces kept" in text
    assert "| ja | 120 | 0.9871 | 0.900 |" in text
    assert "72 weight MatMuls int8 (72 with per-token activation scales; 0 most sensitive kept fp32)" in text
    assert "0.7699 -> served 0.7741" in text and "p99 0.065 (gate: <= 0.1)" in text
    assert "drift vs fp32 with the served vocabulary on 1500 dev comments" in text
    assert "the pruned vocabulary alone (fp32): dev macro-F1 0.7699 -> 0.7689; per-comment drift max 0.74" in text
    assert "against the full fp32 model: dev macro-F1 0.7699 -> 0.7647; per-comment drift max 0.743" in text


def test_card_names_the_matmuls_kept_fp32():
    int8 = {**METRICS["int8"], "matmuls_int8": 70, "fp32_matmuls": ["/l.3/ffn/MatMul_1", "/l.5/ffn/MatMul_1"]}
    text = "\n".join(_size_section({**METRICS, "int8": int8}))
    assert (
        "70 weight MatMuls int8" in text and "2 most sensitive kept fp32: /l.3/ffn/MatMul_1, /l.5/ffn/MatMul_1)" in text
    )


def test_card_says_when_the_vocabulary_was_kept_whole():
    text = "\n".join(_size_section({"vocabulary": {"kept": 250002, "pruned": False}}))
    assert text == "- vocabulary: full (250002 pieces; pruning off or corpus too small)"
