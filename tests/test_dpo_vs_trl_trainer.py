"""End to end against the peer: our DPO trainer and TRL 1.16's DPOTrainer, same tiny model, same
batches, same AdamW and clipping -> the same per-step losses (to 1e-5) and final weights."""

import copy

import pytest
import torch

from rlhfkit.models import tiny_causal_lm
from rlhfkit.schema import PreferencePair
from rlhfkit.trainers.dpo import DPOConfig, DPOTrainer
from rlhfkit.trainers.ordering import length_grouped_batches

trl = pytest.importorskip("trl")
torch.set_num_threads(1)

PAIRS = [PreferencePair(prompt=f"Colour {i}: {c}?", chosen=f" {c} it is", rejected=f" {o}, surely")
         for i, (c, o) in enumerate(zip(["red", "blue", "green", "pink"] * 3, ["gold", "grey", "teal", "plum"] * 3))]


def test_losses_and_weights_match_trl_dpo_trainer(tmp_path):
    from datasets import Dataset
    from trl import DPOConfig as TRLConfig
    from trl import DPOTrainer as TRLTrainer

    model, tok = tiny_causal_lm(seed=0)
    steps = 3
    ours = DPOTrainer(copy.deepcopy(model), tok, DPOConfig(lr=1e-3, batch_size=4, max_steps=steps, max_length=64,
                                                           lr_schedule="constant"), show_progress=False)
    hist = ours.setup(PAIRS).train()
    batches = length_grouped_batches([e.packed_len for e in ours.examples], 4, 0, 0)
    rows = [PAIRS[ours.examples[i].index] for b in batches for i in b]  # TRL reads our batch order
    data = Dataset.from_list([{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in rows])
    args = TRLConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, max_length=64, beta=0.1,
                     learning_rate=1e-3, lr_scheduler_type="constant", max_grad_norm=1.0, max_steps=steps,
                     logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, seed=0,
                     train_sampling_strategy="sequential", disable_tqdm=True,
                     bf16=False)  # transformers 5 turns bf16 autocast on by default where the CPU has it
    peer = TRLTrainer(model=copy.deepcopy(model), ref_model=copy.deepcopy(model).eval(), args=args,
                      train_dataset=data, processing_class=tok)
    peer.train()
    trl_losses = [h["loss"] for h in peer.state.log_history if "loss" in h]
    assert [h["loss"] for h in hist] == pytest.approx(trl_losses, abs=1e-6)
    assert trl_losses[-1] < trl_losses[0] - 0.05  # it did learn, so the comparison is not vacuous
    for a, b in zip(ours.model.parameters(), peer.model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
