"""What the trainers log, shared by all of them: per-window buffers kept on the device (no host
synchronisation per step), averaged once per logging step, and the ratio history with its heatmap.

Keys written to ``Trainer.state.log_history``:

* ``<metric>``: any scalar a trainer adds with :meth:`TrainingLogs.add_metric` (Meta-KD's losses);
* ``<embd|attn|hidn|pred>_loss/<domain>``: per-domain component losses (layers summed);
* ``ratio/<position>/<domain>``, ``ratio_entropy`` and ``similarity/<position>/<domain>/<lower>``:
  the weighting's ratios r_{m,d}, their normalised entropy and the hierarchical similarity ratios.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence

import torch

from .relational import normalised_entropy

RATIO_HISTORY_NAME = "ratio_history.json"
RATIO_PLOT_NAME = "ratios.png"


def window_mean(values: list) -> float:
    """Mean of one logging window: floats, or 0-d tensors kept on device (no host sync per step)."""
    if torch.is_tensor(values[0]):
        return torch.stack(values).float().mean().item()
    return sum(values) / len(values)


class TrainingLogs:
    """Buffers of the current logging window; :meth:`flush` turns them into log entries."""

    def __init__(self):
        self.metrics: dict[str, list] = defaultdict(list)
        self._components: list[torch.Tensor] = []
        self._component_keys: list[str] = []
        self._ratios: list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]] = []

    def add_metric(self, name: str, value) -> None:
        self.metrics[name].append(value.detach() if torch.is_tensor(value) else value)

    def add_components(self, components: dict[str, torch.Tensor], keys: Sequence[str]) -> None:
        """This step's per-domain components ``(D,)`` or ``(M, D)`` (layers summed) for ``keys``."""
        if not keys:
            return
        self._component_keys = list(keys)
        rows = [components[k].sum(0) if components[k].dim() == 2 else components[k] for k in keys]
        self._components.append(torch.stack(rows).detach().float())  # (K, D)

    def add_ratios(self, ratios: torch.Tensor | None, similarity: Sequence[torch.Tensor] = ()) -> None:
        if ratios is not None:
            self._ratios.append((ratios.detach().float(), tuple(a.detach().float() for a in similarity)))

    def flush(self, domains: Sequence[str], positions: Sequence[str] | None = None) -> dict[str, float]:
        """Window means of everything buffered since the last flush (one transfer to the host)."""
        logs = {key: window_mean(values) for key, values in self.metrics.items() if values}
        self.metrics.clear()
        if self._components:
            means = torch.stack(self._components).mean(0).cpu().tolist()
            self._components.clear()
            logs.update(
                {
                    f"{key}_loss/{domain}": value
                    for key, row in zip(self._component_keys, means)
                    for domain, value in zip(domains, row)
                }
            )
        if self._ratios:
            logs.update(self._ratio_logs(domains, positions))
        return logs

    def _ratio_logs(self, domains: Sequence[str], names: Sequence[str] | None) -> dict[str, float]:
        ratios = torch.stack([r for r, _ in self._ratios])  # (T, P, D)
        names = list(names) if names else [f"position{p}" for p in range(ratios.shape[1])]
        logs = {"ratio_entropy": torch.stack([normalised_entropy(r) for r in ratios]).mean().item()}
        for m, alphas in enumerate(zip(*(s for _, s in self._ratios)), start=1):
            for d, row in enumerate(torch.stack(alphas).mean(0).tolist()):
                logs.update({f"similarity/{names[m]}/{domains[d]}/{names[j]}": v for j, v in enumerate(row)})
        for m, row in enumerate(ratios.mean(0).tolist()):
            logs.update({f"ratio/{names[m]}/{domains[d]}": value for d, value in enumerate(row)})
        self._ratios.clear()
        return logs


def ratio_history(log_history: list[dict], positions: Sequence[str], domains: Sequence[str]) -> list[dict]:
    """``[{"step", "ratios": P×D}]`` from the logged ratios (``state.log_history``, so a resumed run
    keeps the history of the steps before the checkpoint)."""
    history = []
    for entry in log_history:
        if f"ratio/{positions[0]}/{domains[0]}" in entry:
            ratios = [[entry[f"ratio/{n}/{d}"] for d in domains] for n in positions]
            history.append({"step": entry["step"], "ratios": ratios})
    return history


def mean_ratios(history: list[dict]) -> list[list[float]] | None:
    """The ratios (positions × domains) of a :func:`ratio_history`, averaged over its logged windows."""
    if not history:
        return None
    rows = [h["ratios"] for h in history]
    positions, domains = len(rows[0]), len(rows[0][0])
    return [[sum(r[m][d] for r in rows) / len(rows) for d in range(domains)] for m in range(positions)]


def ratio_spread(history: list[dict], num_domains: int) -> float:
    """How far the ratios ever moved from uniform: the largest ``|r_{m,d} − 1/D|`` over the history
    (0 for a weighting that keeps every ratio at 1/D)."""
    return max((abs(r - 1 / num_domains) for h in history for row in h["ratios"] for r in row), default=0.0)


def write_ratio_report(directory: str, report: dict) -> None:
    """``ratio_history.json`` (``positions``, ``domains``, settings, ``history``) and the ``ratios.png``
    heatmap of it in ``directory``."""
    from .plots import plot_ratio_history

    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, RATIO_HISTORY_NAME), "w") as handle:
        json.dump(report, handle)
    plot_ratio_history(report, os.path.join(directory, RATIO_PLOT_NAME))
