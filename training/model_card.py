"""MODEL_CARD.md for a bundle: limitations first, then metrics tables, PR curves and calibration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.engine.bundle import BundleMeta


@dataclass
class EvalSet:
    name: str
    report: dict
    y: np.ndarray
    probs: np.ndarray


LIMITATIONS = """\
## Intended use
Aggregate measurement of how a community receives newcomers: rates of welcoming, curious and hostile
comments per thread and community over time, and a queue of threads for human moderators to review.

## Limitations and bias (read before use)
- **Not for automated punishment.** Scores are probabilities from a small multilingual model; a
  hostile score is a reason for a human to look, never a verdict.
- **Training data.** Real comments from public corpora with partial labels (see Training data
  below), our own three-tag labels of real comments, hand-written seeds and challenge pairs. A
  corpus's notion of "offensive" is not always ours; read the per-source figures.
- **Languages.** Real training comments are English, Chinese, German and Korean (plus 480 labelled
  tweets in 8 languages); seeds and challenge pairs cover 15 languages. Other languages, dialects,
  code-mixing and romanised scripts are weaker; per-language metrics below are on small sets.
- **Hard cases.** Sarcasm, counter-speech (quoting hate to reject it), negation and reclaimed slurs
  are where the model errs most; identity mentions alone should not be hostile, but check the
  per-language numbers and the challenge rows before relying on it.
- **Domain shift.** Thresholds maximise the mean F1 over the calibration sets named below; a
  stream with another base rate shifts precision. Re-calibrate on your own labelled data.
- **Truncation.** Text beyond the model window (`max_length` tokens) is not read.
"""


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _table(report: dict) -> list[str]:
    lines = [
        "| tag | rows | support | precision | recall | F1 | accuracy | ROC-AUC | PR-AUC | ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tag, m in report["overall"]["tags"].items():
        cells = [m["n"], m["support"]] + [
            _num(m.get(k)) for k in ("precision", "recall", "f1", "accuracy", "roc_auc", "pr_auc", "ece")
        ]
        lines.append(f"| {tag} | " + " | ".join(str(c) for c in cells) + " |")
    lines.append(f"\nmacro-F1 **{report['overall']['macro_f1']:.3f}** on {report['overall']['n']} rows.\n")
    tags = list(report["overall"]["tags"])
    lines += [
        "| lang | rows | " + " | ".join(f"{t} F1 (n+)" for t in tags) + " | macro-F1 |",
        "|---|---:|" + "---:|" * (len(tags) + 1),
    ]
    for lang, m in report["by_lang"].items():
        cells = [f"{_num(m['tags'][t]['f1'])} ({m['tags'][t]['support']})" for t in tags]
        lines.append(f"| {lang} | {m['n']} | " + " | ".join(cells) + f" | {m['macro_f1']:.3f} |")
    return lines


def plot_curves(folder: Path, labels: list[str], sets: list[EvalSet]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 3.6), squeeze=False)
    for i, label in enumerate(labels):
        ax = axes[0][i]
        for s in sets:
            known = s.y[:, i] >= 0
            if 0 < s.y[known, i].sum() < known.sum():
                precision, recall, _ = precision_recall_curve(s.y[known, i], s.probs[known, i])
                ax.plot(recall, precision, label=s.name)
        ax.set(title=f"{label}: precision-recall", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "pr_curves.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels), 3.6), squeeze=False)
    edges = np.linspace(0, 1, 11)
    for i, label in enumerate(labels):
        ax = axes[0][i]
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        for s in sets:
            known = s.y[:, i] >= 0
            if not known.any():
                continue
            p_known, y_known = s.probs[known, i], s.y[known, i]
            bins = np.clip(np.digitize(p_known, edges[1:-1]), 0, 9)
            xs = [p_known[bins == b].mean() for b in range(10) if (bins == b).any()]
            ys = [y_known[bins == b].mean() for b in range(10) if (bins == b).any()]
            ax.plot(xs, ys, marker="o", label=s.name)
        ax.set(
            title=f"{label}: reliability",
            xlabel="predicted probability",
            ylabel="observed rate",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "calibration.png", dpi=110)
    plt.close(fig)
    return ["pr_curves.png", "calibration.png"]


def _data_section(prepared: dict) -> list[str]:
    """Exactly which sources, licences and how many rows trained the model, and what was skipped."""
    lines = ["## Training data", ""]
    if prepared.get("recipe"):
        lines.append(f"Recipe `{prepared['recipe']}`; corpora folder `{prepared.get('corpora')}`.")
    lines += [
        "",
        "| source | format | tags it labels | licence | train | dev | test | sampled per epoch |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for name, c in prepared.get("sources", {}).items():
        lines.append(
            f"| {name} | {c['format']} | {', '.join(c['tags'])} | {c['licence'] or '-'} | {c.get('train', 0)}"
            f" | {c.get('dev', 0)} | {c.get('test', 0)} | {c.get('per_epoch') or 'all'} |"
        )
    skipped = prepared.get("skipped_sources") or []
    lines += [
        "",
        f"Skipped (not found at build time): {', '.join(skipped)}."
        if skipped
        else "Every source of the recipe was present.",
        "",
    ]
    lines += [
        "A source's row says nothing about the tags it does not label: those are masked out of the loss,",
        "never counted as 0. Thresholds were picked on: "
        + (", ".join(prepared.get("calibrate_on") or []) or "the dev split")
        + ".",
        "",
    ]
    return lines


def _challenge_section(challenge: dict) -> list[str]:
    langs = sorted({lang for case in challenge["cases"] for lang in challenge["table"][case]})
    lines = [
        "## Held-out challenge sets (functional tests; never trained on)",
        "",
        "Share of rows whose hostile decision is right: accuracy on not-hostile case types, recall on",
        "hostile ones, at the bundle's hostile threshold.",
        "",
        "| case | hostile? | rows | all | " + " | ".join(langs) + " |",
        "|---|---|---:|---:|" + "---:|" * len(langs),
    ]
    for case in challenge["cases"]:
        row = challenge["table"][case]
        cells = [f"{row[lang]:.2f}" if lang in row else "" for lang in langs]
        lines.append(
            f"| {case} | {'yes' if challenge['hostile_case'][case] else 'no'} | {challenge['counts'][case]}"
            f" | {challenge['overall'][case]:.2f} | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def _size_section(metrics: dict) -> list[str]:
    """How the served model was made small and fast, with the measured effect (training/export.py)."""
    lines: list[str] = []
    vocab = metrics.get("vocabulary", {})
    if vocab.get("kept") and vocab.get("pruned", True) and "full" in vocab:
        lines += [
            f"- vocabulary: {vocab['kept']:,} of {vocab['full']:,} pieces kept ({vocab['used_by_corpus']:,} used by "
            f"{vocab['fit_comments']:,} real comments and seeds, {vocab['single_character_fallback']:,} single "
            "characters so that other words are spelt, not <unk>); coverage on held-out real comments "
            "(share of tokens unchanged, share of comments tokenized exactly as before):",
            "",
            "| lang | comments | tokens unchanged | comments unchanged |",
            "|---|---:|---:|---:|",
        ]
        for lang, c in vocab.get("holdout_coverage", {}).items():
            lines.append(f"| {lang} | {c['comments']} | {c['token_coverage']:.4f} | {c['comments_unchanged']:.3f} |")
        lines.append("")
        seeds = vocab.get("seed_holdout_coverage")
        if seeds:
            languages = ", ".join((vocab.get("wordlists") or {}).get("languages", [])) or "no language"
            lines += [
                f"  {vocab.get('wordlist_pieces', 0):,} pieces are kept for the frequent words of "
                f"{languages} (wordfreq's lists); "
                "the same coverage on the held-out seed comments (dev and test; languages the corpora lack):",
                "",
                "| lang | comments | tokens unchanged | comments unchanged |",
                "|---|---:|---:|---:|",
            ]
            for lang, c in seeds.items():
                lines.append(
                    f"| {lang} | {c['comments']} | {c['token_coverage']:.4f} | {c['comments_unchanged']:.3f} |"
                )
            lines.append("")
    elif vocab:
        lines.append(f"- vocabulary: full ({vocab.get('kept')} pieces; pruning off or corpus too small)")
    if "dev_fp32" in vocab:
        v = vocab["dev_fp32"]
        lines.append(
            f"- the pruned vocabulary alone (fp32): dev macro-F1 {v['dev_macro_f1_fp32']:.4f} -> "
            f"{v['dev_macro_f1_int8']:.4f}; per-comment drift max {v['drift_max']}, p99 {v['drift_p99']}"
        )
    int8 = metrics.get("int8")
    if int8:
        lines.append(
            f"- int8: {int8.get('matmuls_int8')} weight MatMuls int8 ({len(int8.get('per_token_matmuls', []))} "
            f"with per-token activation scales{', in one fixed range' if int8.get('fixed_range_inputs') else ''}; "
            f"{len(int8.get('fp32_matmuls', []))} most sensitive kept fp32"
            f"{': ' + ', '.join(int8['fp32_matmuls']) if int8.get('fp32_matmuls') else ''}), "
            f"word embeddings {int8.get('embedding')} (max change "
            f"{int8.get('embedding_max_abs_error')}); dev macro-F1 fp32 {int8['dev_macro_f1_fp32']:.4f} -> served "
            f"{int8['dev_macro_f1_int8']:.4f} (gate: drop <= {int8['max_drop']}); per-comment probability drift vs "
            f"{int8.get('reference', 'fp32')} on {int8.get('rows')} dev comments: max {int8.get('drift_max')}, p99 "
            f"{int8.get('drift_p99')} (gate: <= {int8.get('max_drift_p99')}), mean {int8.get('drift_mean')}"
        )
        full = int8.get("against_full_fp32")
        if full:
            lines.append(
                f"- served model (vocabulary and int8) against the full fp32 model: dev macro-F1 "
                f"{full['dev_macro_f1_fp32']:.4f} -> {full['dev_macro_f1_int8']:.4f}; per-comment drift max "
                f"{full['drift_max']}, p99 {full['drift_p99']}, mean {full['drift_mean']}"
            )
    return lines


def write_model_card(
    folder: Path, meta: BundleMeta, sets: list[EvalSet], prepared: dict, challenge: dict | None = None
) -> Path:
    plots = plot_curves(folder, list(meta.labels), sets)
    lines = [
        f"# Model card: {meta.name} ({meta.version})",
        "",
        "Tags each comment **welcoming**, **curious** and/or **hostile** (none = neutral), per the",
        "project's label guide. One sigmoid per tag, temperature-calibrated, per-tag thresholds.",
        "",
        LIMITATIONS,
        "## Model",
        "",
        f"- base model: `{meta.base_model}`; max_length {meta.max_length}; text prefix `{meta.text_prefix!r}`",
        f"- served file: `{meta.model_file}` (ONNX; int8 dynamic quantization unless stated otherwise)",
        f"- thresholds: {meta.thresholds}",
        f"- temperatures: {meta.temperatures}",
        f"- data digest `{meta.data_digest}`",
        f"- training config digest `{meta.training_config_digest}`; created {meta.created_at.isoformat()}",
        "",
    ]
    lines += _size_section(meta.metrics)
    parity = meta.metrics.get("parity")
    if isinstance(parity, dict) and parity.get("layout") == "packed":
        lines.append(
            "- batches: packed (short comments share a model row, attention kept inside each comment; "
            "no padding to the longest: `serving/engine/packing.py`)"
        )
    if parity is not None:
        lines.append(f"- fp32 ONNX vs torch parity: {parity}")
    lines.append("")
    lines += _data_section(prepared)
    if challenge:
        lines += _challenge_section(challenge)
    for s in sets:
        lines += [f"## Metrics: {s.name}", "", *_table(s.report), ""]
        crossfit = s.report.get("crossfit")
        if crossfit:
            lines += [
                f"Cross-fitted on this set (thresholds picked on one half, measured on the other): macro-F1 "
                f"**{crossfit['macro_f1']:.3f}**{_interval(crossfit)}; "
                + "; ".join(
                    f"{t} P {_num(m['precision'])} R {_num(m['recall'])} F1 {_num(m['f1'])}"
                    for t, m in crossfit["tags"].items()
                )
                + ".",
                "",
            ]
    lines += ["## Curves", "", *(f"![{p}]({p})" for p in plots), ""]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _interval(crossfit: dict) -> str:
    interval = crossfit.get("macro_f1_interval")
    if not interval:
        return ""
    return f" (95% bootstrap interval over its comments {interval[0]:.3f}-{interval[1]:.3f})"
