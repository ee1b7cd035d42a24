"""Figures: the domain-relational ratios over training."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def plot_ratio_history(report: dict, path: str) -> bool:
    """One heatmap per distilled position: domains (rows) × logging steps (columns), colour = r_{m,d}.

    ``report`` is the content of ``ratio_history.json`` (``positions``, ``domains``, ``history``).
    Returns False (and logs why) when matplotlib is not installed (``pip install hrkd-trainer[plot]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        logger.warning("matplotlib is not installed: skipping %s (pip install 'hrkd-trainer[plot]')", path)
        return False
    positions, domains, history = report["positions"], report["domains"], report["history"]
    if not history:
        return False
    steps = [entry["step"] for entry in history]
    ratios = np.array([entry["ratios"] for entry in history])  # (T, P, D)
    uniform = 1.0 / len(domains)
    spread = max(float(np.abs(ratios - uniform).max()), 1e-3)
    fig, axes = plt.subplots(
        len(positions), 1, figsize=(max(6.0, 0.12 * len(steps) + 3), 1.0 + 0.45 * len(domains) * len(positions)),
        sharex=True, squeeze=False,
    )  # fmt: skip
    image = None
    for m, name in enumerate(positions):
        ax = axes[m, 0]
        image = ax.imshow(
            ratios[:, m, :].T, aspect="auto", cmap="RdBu_r", vmin=uniform - spread, vmax=uniform + spread,
            extent=(steps[0] - 0.5, steps[-1] + 0.5, len(domains) - 0.5, -0.5), interpolation="nearest",
        )  # fmt: skip
        ax.set_yticks(range(len(domains)), domains)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    axes[-1, 0].set_xlabel("training step")
    title = f"Domain-relational ratios r (white = uniform 1/{len(domains)})"
    if report.get("relational_mode"):
        title += f" — {report['relational_mode']}"
    fig.suptitle(title)
    fig.colorbar(image, ax=axes[:, 0].tolist(), shrink=0.8, label="ratio")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True
