"""The method contract: the trainer computes the recommendation loss, a method adds its own."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rclrec.config import ExperimentConfig
from rclrec.data.batches import TrainingInstances, trim_padding
from rclrec.data.split import LeaveOneOutSplit
from rclrec.devices import to_device
from rclrec.losses.recommendation import RecommendationLoss


@dataclass
class Batch:
    """One training step's instances.

    Attributes:
        index: (B,) rows of the TrainingInstances.
        inputs: (B, L) left-padded input items (tensor on the training device).
        users: (B,) user rows (numpy).
        whole: (B,) True where the instance ends with the user's final training target (numpy).
        host_inputs, host_targets: ``inputs`` and the (B, L) or (B, 1) targets as numpy
            arrays: what depends on their values (which positions have a target, augmented
            views) is found on the host, where a GPU would have to stop to read them back.
        device: the training device.
        targets: ``host_targets`` on the device, copied when first asked for (most methods
            never need them there).
    """

    index: np.ndarray
    inputs: torch.Tensor
    users: np.ndarray
    whole: np.ndarray
    host_inputs: np.ndarray
    host_targets: np.ndarray
    device: torch.device

    @functools.cached_property
    def targets(self) -> torch.Tensor:
        return to_device(self.host_targets, self.device)

    @classmethod
    def of(cls, instances: TrainingInstances, index: np.ndarray, device: torch.device) -> Batch:
        """The instances ``index``, trimmed to their longest input."""
        inputs, targets = trim_padding(instances.inputs[index], instances.targets[index])
        return cls(index=index, inputs=to_device(inputs, device), users=instances.users[index],
                   whole=instances.whole[index], host_inputs=inputs, host_targets=targets,
                   device=device)


class Method:
    """Plain next-item training (SASRec, FMLP-Rec): no extra objective.

    A method with settings names its config section (``section``) and declares it as a frozen
    dataclass (``Config``) in its own module; the registry (rclrec/methods/__init__.py) makes
    the section known to the configuration. The run recipe gives the method what it needs:
    the config, the split, the training instances, the device and the items' original ids.
    """

    Config: type | None = None  # the frozen dataclass of the method's section; None = none
    section: str = ""  # the config section the method reads ("" for none)

    def __init__(self, cfg: ExperimentConfig, split: LeaveOneOutSplit,
                 instances: TrainingInstances, device: torch.device,
                 item_ids: list[str] | None = None) -> None:
        self.cfg = cfg
        self.split = split
        self.instances = instances
        self.device = device
        # train.loss, built once (item frequencies): the trainer and the method's own rec. terms
        # (RCL's positives) call this same object.
        self.rec_loss = RecommendationLoss.build(cfg.train, instances.targets, split.num_items,
                                                 device)
        self.item_ids = item_ids  # the data file's item ids (None: the internal ids 1..n)
        # The method's own settings, resolved (callers may pass an unresolved config).
        self.settings = (type(self).resolve_settings(cfg.sections[self.section], cfg)
                         if self.section else None)

    # The trainer's recommendation loss is multiplied by this (CT4Rec averages it with the
    # loss of its second dropout pass, so it takes half here and adds the other half itself).
    rec_loss_weight: float = 1.0
    extra_tokens: int = 0  # input-only rows the encoder needs after the items ([mask])
    # False for a method that steps an optimizer of its own: its replicas would drift apart.
    data_parallel: bool = True

    @classmethod
    def reads(cls) -> tuple[str, ...]:
        """The fields of ``section`` the method reads (all of them unless it says otherwise):
        the generic flags (--tau, --alpha, ...) may set only these."""
        return tuple(f.name for f in dataclasses.fields(cls.Config)) if cls.Config else ()

    @classmethod
    def resolve_settings(cls, settings: Any, cfg: ExperimentConfig) -> Any:
        """The section as a run of ``cfg`` uses it: settings left to depend on others filled in
        (e.g. by dataset), and settings this run does not read set to their defaults, so the
        resolved config (what a cell records and hashes) holds only what the run uses.
        ``cfg``'s shared sections are resolved (max_len, instances)."""
        return settings

    def setup(self, encoder: nn.Module) -> None:
        """Called once before training (e.g. to build a similarity index)."""

    def parameters(self) -> list[nn.Parameter]:
        """Extra trainable parameters the optimizer must update (e.g. learned augmenters)."""
        return []

    def random_state(self) -> dict:
        """States of the method's own generators (attributes), saved in every checkpoint."""
        state = {}
        for name, value in vars(self).items():
            if isinstance(value, np.random.Generator):
                state[name] = value.bit_generator.state
            elif isinstance(value, torch.Generator):
                state[name] = value.get_state()
        return state

    def set_random_state(self, state: dict) -> None:
        for name, value in state.items():
            generator = getattr(self, name)
            if isinstance(generator, np.random.Generator):
                generator.bit_generator.state = value
            else:
                generator.set_state(value)

    def optimizer_state(self) -> dict:
        """States of the method's own optimizers (attributes, e.g. MCLRec's augmenters' Adam),
        saved in every checkpoint: a resumed run must not restart their moments."""
        return {name: value.state_dict() for name, value in vars(self).items()
                if isinstance(value, torch.optim.Optimizer)}

    def set_optimizer_state(self, state: dict) -> None:
        for name, value in state.items():
            getattr(self, name).load_state_dict(value)

    def checkpoint_state(self) -> dict:
        """Non-parameter state a resumed run needs (e.g. what an index was built from)."""
        return {}

    def load_checkpoint_state(self, state: dict) -> None:
        """Restore ``checkpoint_state``; called by resume, before ``setup``."""

    def on_epoch_start(self, epoch: int, encoder: nn.Module) -> None:
        """Called before each epoch (e.g. to rebuild a similarity from the current encoder)."""

    def extra_loss(self, batch: Batch, hidden: torch.Tensor,
                   encoder: nn.Module
                   ) -> tuple[torch.Tensor | None, dict[str, float | torch.Tensor]]:
        """The method's weighted extra loss for a batch, and scalar statistics to log: floats
        or 0-d tensors (the trainer sums tensors on the device, so logging one costs no
        synchronisation per step).

        Args:
            batch: the step's instances.
            hidden: (B, L, D) encoder states of ``batch.inputs`` (with dropout, as trained).
            encoder: the encoder, for extra forward passes (other views, positives).
        """
        return None, {}
