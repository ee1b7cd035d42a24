"""Loading a pretrained classifier without the load report's expected noise (new heads, the weights
of layers a student leaves out), while unexpected differences still warn."""

from __future__ import annotations

import logging
import re

from transformers import AutoModelForSequenceClassification

logger = logging.getLogger(__name__)
_LAYER_KEY = re.compile(r"(?:^|\.)layers?\.(\d+)\.")
_EXPECTED_NEW = ("classifier.", "score.", "pre_classifier.")


def load_quietly(name_or_path: str, kept_layers: int | None = None, **kwargs):
    """``AutoModelForSequenceClassification.from_pretrained`` without the expected load-report noise:
    new classification heads (MISSING), when cutting to ``kept_layers`` the weights of the layers
    left out (UNEXPECTED), and a saved pooler the classifier has none of (UNEXPECTED) are summed up in
    INFO lines; any other missing or unexpected weight is
    still a warning, by name."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            name_or_path, output_loading_info=True, **kwargs
        )
    finally:
        hf_logging.set_verbosity(previous)

    def dropped_layer(key: str) -> bool:
        match = _LAYER_KEY.search(key)
        return kept_layers is not None and match is not None and int(match.group(1)) >= kept_layers

    missing = sorted(info.get("missing_keys", ()))
    unexpected = sorted(info.get("unexpected_keys", ()))
    new_head = [k for k in missing if k.startswith(_EXPECTED_NEW)]
    left_out = [k for k in unexpected if dropped_layer(k)]
    # a checkpoint saved with a pooler (all-mpnet-base-v2, RoBERTa) that the classifier does not use
    own = {name for name, _ in model.named_parameters()}
    unused_pooler = [k for k in unexpected if "pooler." in k and not any(n.endswith(k) for n in own)]
    others = [k for k in missing if k not in new_head]
    others += [k for k in unexpected if k not in left_out and k not in unused_pooler]
    others += [str(k) for k in info.get("mismatched_keys", ())]
    logger.info(
        "loaded %s: new classification head (%d weights)%s",
        name_or_path,
        len(new_head),
        f", kept the first {kept_layers} layers ({len(left_out)} weights of the others left out)"
        if left_out
        else "",
    )
    if unused_pooler:
        logger.info(
            "%s: the checkpoint's pooler (%d weights) is not used by this classifier",
            name_or_path,
            len(unused_pooler),
        )
    if others:
        logger.warning("loading %s: unexpected missing, extra or resized weights: %s", name_or_path, others)
    return model
