#!/usr/bin/env python
"""Publish a finished run's distilled student on the Hugging Face Hub, with a generated model card.

    python hub_upload.py runs/vader --repo-id me/minilm-vader-student --dry-run   # write and list the folder
    python hub_upload.py runs/vader --repo-id me/minilm-vader-student             # push it
    hrkd-hub-upload runs/vader --repo-id me/minilm-vader-student --private --revision v1

Uploads the student (shared encoder and every domain's classifier, tokenizer, configs with the
domain list and label names), README.md (the model card), results.json and the ratio plots: never
the teacher, the projections, the relational module or optimizer states. The token comes from
--token, HF_TOKEN or the login cache (`hf auth login`). Re-running is idempotent.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hrkd_trainer.hub_cli import main

if __name__ == "__main__":
    sys.exit(main())
