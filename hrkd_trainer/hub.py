"""Publishing a finished run's student on the Hugging Face Hub: the folder, the model card, the push.

One function builds the folder that is pushed (:func:`stage_run`); ``hub_upload.py``, the recipes'
``--push_to_hub`` and :meth:`MultiDomainTrainer.push_to_hub` all go through it, so they publish the
same content::

    README.md            the model card (Hub metadata + text; :mod:`hrkd_trainer.model_card`)
    results.json         the run's results, as written
    ratios.png           the HRKD ratio heatmap (runs with --method hrkd)
    config.json, model.safetensors, tokenizer files     the shared encoder  → AutoModel
    <domain>/config.json, model.safetensors, ...         encoder + that domain's classifier
                                                         → AutoModelForSequenceClassification

(per-domain students, ``--method tinybert``/``meta-distill``: ``hrkd_experts.json`` and
``<domain>/`` holding that domain's own encoder, with its classifier in ``<domain>/<domain>/``.)

Only files of the student export are taken, by name; anything else in the student folder (the
pickled training arguments) is listed as left out. The teacher, the projections, the relational
module and optimizer states live elsewhere in the run folder and are never read.

The push (:func:`push_folder`) is one Hub commit, which the Hub applies all at once: a failure leaves
the repo as it was (at most created and empty), and running the same command again finishes the job.
Unchanged files are not sent again, and remote files that the folder no longer has are deleted in the
same commit, so the repo mirrors the folder.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from .export import is_compact
from .model_card import model_card, per_domain_models
from .modeling import EXPERTS_FILE
from .results import (
    PREDICTIONS_FILE,
    RESULTS_FILE,
    trainer_results,
    without_local_paths,
    write_json,
    write_results,
)

logger = logging.getLogger(__name__)

STUDENT_DIR = "student"
CARD_FILE = "README.md"
#: figures of the run that go next to the card
PLOT_FILES = ("ratios.png",)
#: files a student export consists of (weights, configs, tokenizer), by name
EXPORT_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    EXPERTS_FILE,
)


class PublishError(RuntimeError):
    """Publishing cannot go on; the message says why and what to do."""


@dataclass
class StagedFolder:
    """What :func:`stage_run` wrote: ``files`` (paths relative to ``path``) and what it left out."""

    path: str
    files: list[str]
    left_out: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        sizes = {f: os.path.getsize(os.path.join(self.path, f)) for f in self.files}
        lines = [f"{self.path}: {len(self.files)} files, {sum(sizes.values()) / 1e6:.1f} MB"]
        lines += [f"  {sizes[f] / 1e6:10.2f} MB  {f}" for f in self.files]
        lines += [f"  left out: {path} ({why})" for path, why in self.left_out]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- reading a run
def read_results(run_dir: str) -> dict:
    """``run_dir/results.json`` after checking that the run finished with an exported student."""
    if not os.path.isdir(run_dir):
        raise PublishError(f"run directory not found: {run_dir}")
    path = os.path.join(run_dir, RESULTS_FILE)
    student = os.path.join(run_dir, STUDENT_DIR)
    unfinished = (
        f"{run_dir} has no finished student: {{}}. A run writes {STUDENT_DIR}/ and {RESULTS_FILE} when it "
        "completes; let it finish (or rerun the recipe with the same --output_dir) and upload again."
    )
    if not os.path.isfile(path):
        raise PublishError(unfinished.format(f"{RESULTS_FILE} is missing"))
    try:
        with open(path) as handle:
            results = json.load(handle)
    except json.JSONDecodeError as err:
        raise PublishError(f"{path} is not valid JSON ({err}): the run did not finish writing it") from err
    missing = [k for k in ("domains", "labels", "student", "teacher") if k not in results]
    if missing or "accuracy" not in results.get("student", {}):
        raise PublishError(
            f"{path} lacks {missing or ['student.accuracy']}: it is not an hrkd-trainer run's results"
        )
    if not os.path.isdir(student):
        raise PublishError(unfinished.format(f"the folder {student} is missing"))
    if is_compact(student):
        raise PublishError(
            f"{student} was exported with --export_domain_copies false (the encoder once, for hrkd-trainer only): "
            "the Hub needs one AutoModelForSequenceClassification folder per domain. Re-export it with "
            "MultiDomainModel.from_pretrained(path).save_pretrained(path)"
        )
    for relative in model_folders(results):
        folder = os.path.join(student, relative)
        for name in ("config.json", "model.safetensors"):
            if not os.path.isfile(os.path.join(folder, name)) and not (
                name == "model.safetensors" and os.path.isfile(os.path.join(folder, name + ".index.json"))
            ):
                raise PublishError(unfinished.format(f"{os.path.join(folder, name)} is missing"))
    return results


def model_folders(results: dict) -> list[str]:
    """Folders of the student export, relative to it, that hold a config and weights."""
    domains = results["domains"]
    if per_domain_models(results):
        return [p for d in domains for p in (d, f"{d}/{d}")]
    return ["", *domains]


def is_export_file(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXPORT_FILES)


# ---------------------------------------------------------------------------- the folder
def stage_run(
    run_dir: str,
    out_dir: str,
    repo_id: str,
    base_model: str | None = None,
    license: str | None = None,
    overwrite: bool = False,
) -> StagedFolder:
    """Write the exact folder that is pushed for the run in ``run_dir`` to ``out_dir``.

    Files are hard-linked where the file system allows (the weights are not copied twice).
    ``out_dir`` must be new or empty unless ``overwrite``; it may not be inside ``run_dir/student``.
    """
    results = without_local_paths(read_results(run_dir), run_dir)  # nothing local is published
    student = os.path.abspath(os.path.join(run_dir, STUDENT_DIR))
    target = os.path.abspath(out_dir)
    if target == student or target.startswith(student + os.sep):
        raise PublishError(
            f"the staging folder {out_dir} is inside the student export {student}: pick another"
        )
    if os.path.exists(target) and os.listdir(target):
        if not overwrite:
            raise PublishError(f"{out_dir} exists and is not empty: remove it or pass --overwrite")
        shutil.rmtree(target)
    os.makedirs(target, exist_ok=True)

    files, left_out = [], []
    for root, dirs, names in os.walk(student):
        dirs.sort()
        for name in sorted(names):
            source = os.path.join(root, name)
            relative = os.path.relpath(source, student).replace(os.sep, "/")
            if not is_export_file(name):
                left_out.append((f"{STUDENT_DIR}/{relative}", "not part of a model export"))
                continue
            _link_or_copy(source, os.path.join(target, relative))
            files.append(relative)
    write_json(os.path.join(target, RESULTS_FILE), results)
    files.append(RESULTS_FILE)
    for extra in PLOT_FILES:
        source = os.path.join(run_dir, extra)
        if os.path.isfile(source):
            _link_or_copy(source, os.path.join(target, extra))
            files.append(extra)
    example = card_example(run_dir, results)
    card = model_card(results, repo_id, base_model=base_model, license=license, files=files, example=example)
    with open(os.path.join(target, CARD_FILE), "w", encoding="utf-8") as handle:
        handle.write(card)
    files.append(CARD_FILE)
    return StagedFolder(path=out_dir, files=sorted(files), left_out=left_out)


def _link_or_copy(source: str, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


# ---------------------------------------------------------------------------- the card's example
def card_example(run_dir: str, results: dict, max_chars: int = 160) -> dict | None:
    """A short test example of the first domain and the label the run's student predicted for it
    (from ``test_predictions.json``), or None when the run has no predictions file."""
    path = os.path.join(run_dir, PREDICTIONS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        saved = json.load(handle)
    rows = saved["examples"][results["domains"][0]]
    for i, text in enumerate(rows["text"]):
        pair = rows.get("text_pair", [None] * len(rows["text"]))[i]
        if len(text) + len(pair or "") <= max_chars:
            inputs = {"text": text, "text_pair": pair} if pair is not None else text
            return {"inputs": inputs, "label": saved["labels"][rows["prediction"][i]]}
    return None


# ---------------------------------------------------------------------------- the push
def resolve_token(token: str | None = None) -> str:
    """``token``, else ``HF_TOKEN``, else the ``huggingface_hub`` login cache."""
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PublishError(
            "no Hugging Face token: pass --token, set HF_TOKEN, or log in once with `hf auth login`"
        )
    return token


def push_folder(
    folder: str,
    repo_id: str,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
):
    """Push ``folder`` as one commit to ``repo_id`` (created if missing), mirroring it. Returns the
    ``CommitInfo``."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    if constants.is_offline_mode():
        raise PublishError("HF_HUB_OFFLINE is set: unset it (and TRANSFORMERS_OFFLINE) to push to the Hub")
    api = HfApi(endpoint=endpoint, token=resolve_token(token))
    try:
        me = api.whoami()
    except HfHubHTTPError as err:
        raise PublishError(f"the Hub rejected the token ({_status(err)}): check it or log in again") from err
    except OSError as err:
        raise PublishError(f"cannot reach the Hub at {api.endpoint}: {err}") from err
    owners = [me["name"], *(org["name"] for org in me.get("orgs", []))]
    if "/" not in repo_id:
        repo_id = f"{me['name']}/{repo_id}"
    namespace = repo_id.split("/")[0]
    if namespace not in owners:
        raise PublishError(
            f"{repo_id} belongs to {namespace!r}, and this token (user {me['name']!r}, organisations "
            f"{owners[1:]}) cannot write there: use --repo-id {me['name']}/{repo_id.split('/')[-1]}"
        )
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.upload_folder(
            folder_path=folder,
            repo_id=repo_id,
            revision=revision,
            commit_message=commit_message or "Upload distilled student (hrkd-trainer)",
            delete_patterns="*",
        )
    except HfHubHTTPError as err:
        if _status(err) in (401, 403):
            raise PublishError(f"the Hub refused to write to {repo_id} ({_status(err)}): {err}") from err
        raise PublishError(_retry_message(repo_id, err)) from err
    except Exception as err:
        if _is_network_error(err):
            raise PublishError(_retry_message(repo_id, err)) from err
        raise


def _is_network_error(err: BaseException | None) -> bool:
    """A connection or transfer failure anywhere in the exception chain (huggingface_hub wraps the
    transport's errors: 'Error while uploading ... to the Hub')."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        module = type(err).__module__
        if isinstance(err, (OSError, TimeoutError)) or module.startswith(
            ("httpx", "httpcore", "requests", "urllib3")
        ):
            return True
        err = err.__cause__ or err.__context__
    return False


def _status(err) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _retry_message(repo_id: str, err: Exception) -> str:
    return (
        f"uploading to {repo_id} failed: {err}. The Hub applies a commit all at once, so {repo_id} holds "
        "either its previous content or all of the new one; run the same command again to finish (files "
        "already uploaded are not sent twice)."
    )


def publish_run(
    run_dir: str,
    repo_id: str | None,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    base_model: str | None = None,
    license: str | None = None,
    endpoint: str | None = None,
):
    """Stage the run's student in a temporary folder and push it. Returns the ``CommitInfo``."""
    if not repo_id:
        raise PublishError("no repo id: pass --repo-id (hub_upload.py) or --hub_model_id (recipes)")
    read_results(run_dir)  # fail before asking the Hub anything
    with tempfile.TemporaryDirectory(prefix="hrkd-hub-") as folder:
        staged = stage_run(run_dir, folder, repo_id, base_model=base_model, license=license, overwrite=True)
        for path, why in staged.left_out:
            logger.info("not uploaded: %s (%s)", path, why)
        info = push_folder(folder, repo_id, token, private, revision, commit_message, endpoint)
    logger.info("pushed %d files to %s", len(staged.files), getattr(info, "commit_url", repo_id))
    return info


# ---------------------------------------------------------------------------- from a trainer
def publish_trainer(
    trainer,
    commit_message: str | None = None,
    token: str | None = None,
    revision: str | None = None,
    private: bool | None = None,
    endpoint: str | None = None,
):
    """``Trainer.push_to_hub`` of the multi-domain trainers: write ``output_dir/hub_run`` (the student
    export and :func:`trainer_results`), then publish it as :func:`publish_run` does."""
    args = trainer.args
    run_dir = os.path.join(args.output_dir, "hub_run")
    trainer.save_model(os.path.join(run_dir, STUDENT_DIR), _internal_call=True)
    if not args.should_save:
        return None
    try:
        results = trainer_results(trainer)
    except ValueError as err:
        raise PublishError(str(err)) from err
    write_results(os.path.join(run_dir, RESULTS_FILE), results)
    ratios = getattr(trainer, "save_ratio_report", None)
    if ratios is not None and args.relational:
        ratios(run_dir)
    return publish_run(
        run_dir,
        args.hub_model_id or os.path.basename(os.path.normpath(args.output_dir)),
        token=token or args.hub_token,
        private=args.hub_private_repo if private is None else private,
        revision=revision or args.hub_revision,
        commit_message=commit_message,
        endpoint=endpoint,
    )
