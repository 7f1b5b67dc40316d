"""`rlhfkit ilf`: imitation learning from language feedback (refine -> select -> SFT)."""

from __future__ import annotations

import typer

from rlhfkit.commands.options import config_command
from rlhfkit.trainers.config import ILFConfig

HELP = """Learn from written critiques (ILF, Scheurer et al. 2023): for each (prompt, response,
critique), sample M refinements from the policy conditioned on the critique, keep the one the
scorer rates best, fine-tune on them with the SFT trainer; --rounds times. Edits are SFT targets
as they are.

Example: rlhfkit feedback export -p helpful -f ilf -o critiques.jsonl && rlhfkit ilf --critiques
critiques.jsonl --scorer rlhfkit.rewards.critique_rules:at_most_words --refinements 4 --out runs/ilf

Scorer: a reward-model folder, module:function, or judge:BASE_URL#MODEL. Writes the HF model to
OUT, OUT/refinements.jsonl (reused on a re-run) and OUT/lineage.json (hashes of the critiques
trained on). Precedence: defaults < --recipe < flags.
"""


def run_ilf_command(cfg: ILFConfig):
    from pathlib import Path

    from rlhfkit.commands.common import console, user_errors
    from rlhfkit.data.language_feedback import read_ilf_triples
    from rlhfkit.models import load_causal_lm
    from rlhfkit.trainers.ilf import load_scorer, run_ilf
    from rlhfkit.trainers.sft import read_sft_examples

    with user_errors():
        cfg.validate()
        if not cfg.data:
            raise ValueError("--critiques (or 'data:' in the recipe) is required")
        triples = read_ilf_triples(cfg.data)
        triples = triples[: cfg.limit] if cfg.limit else triples
        edits = read_sft_examples(cfg.edits) if cfg.edits else []
        scorer = load_scorer(cfg.scorer)
        policy, tokenizer = load_causal_lm(cfg.model, dtype="fp32")
        # inside: refinements sampled with other settings or from other data are refused clearly
        _model, lineage = run_ilf(policy, tokenizer, cfg, scorer, triples, edits)
    last = lineage["rounds"][-1]
    console.print(f"saved {Path(cfg.out)} after {len(lineage['rounds'])} round(s); last round trained on "
                  f"{last['targets']} refinements + {last['edits']} edits; lineage: {Path(cfg.out) / 'lineage.json'}")
    return lineage


app = typer.Typer()
app.callback(invoke_without_command=True, help=HELP)(config_command(ILFConfig, run_ilf_command, "ilf"))
