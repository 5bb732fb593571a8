"""Leave-one-out split (docs/METHOD.md section 1) and the contrast units of RCL (section 3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rclrec.data.dataset import DataError, SequenceDataset

MIN_LENGTH = 3  # one training item, one validation item, one test item


@dataclass
class LeaveOneOutSplit:
    """Training sequences and the evaluation cases of every user (same user order as the dataset).

    train[u] is everything before the last two items. Validation input = train[u], target =
    the second-to-last item; test input = train[u] + validation item, target = the last item.
    """

    train: list[np.ndarray]
    valid_targets: np.ndarray
    test_targets: np.ndarray
    num_items: int

    @property
    def num_users(self) -> int:
        return len(self.train)

    def valid_inputs(self) -> list[np.ndarray]:
        return self.train

    def test_inputs(self) -> list[np.ndarray]:
        return [np.append(t, v) for t, v in zip(self.train, self.valid_targets, strict=True)]


def leave_one_out(ds: SequenceDataset) -> LeaveOneOutSplit:
    """Split every user's sequence into train / validation / test by its last two items."""
    for u, s in enumerate(ds.sequences):
        if len(s) < MIN_LENGTH:
            uid = ds.user_ids[u] if ds.user_ids else str(u)
            raise DataError(f"{ds.name}: user {uid} has {len(s)} interactions; leave-one-out needs "
                            f"at least {MIN_LENGTH} (filter short users when reading)")
    return LeaveOneOutSplit(
        train=[np.asarray(s[:-2], dtype=np.int64) for s in ds.sequences],
        valid_targets=np.array([s[-2] for s in ds.sequences], dtype=np.int64),
        test_targets=np.array([s[-1] for s in ds.sequences], dtype=np.int64),
        num_items=ds.num_items,
    )


def contrast_units(train: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The unit of contrast of RCL: each training sequence split into (input, target).

    The target is the last training item; the input is every training item before it (may be
    empty when the training sequence has a single item). Similarities are computed on inputs.

    Returns:
        inputs: one int64 array per user.
        targets: (N,) int64.
    """
    inputs = [np.asarray(t[:-1], dtype=np.int64) for t in train]
    targets = np.array([t[-1] for t in train], dtype=np.int64)
    return inputs, targets


@dataclass
class HeldOutSplit:
    """Training sequences and evaluation cases given apart: the temporal split, split files.

    The same interface as :class:`LeaveOneOutSplit`, so the trainer and the methods take
    either; here the evaluated users need not be the trained ones, nor in the same order.
    Item ids are those of the training data (1..num_items).
    """

    train: list[np.ndarray]
    valid_histories: list[np.ndarray]
    valid_targets: np.ndarray
    test_histories: list[np.ndarray]
    test_targets: np.ndarray
    num_items: int
    skipped: dict[str, int]  # evaluation cases left out, by reason

    @property
    def num_users(self) -> int:
        return len(self.train)

    def valid_inputs(self) -> list[np.ndarray]:
        return self.valid_histories

    def test_inputs(self) -> list[np.ndarray]:
        return self.test_histories


def temporal_split(ds: SequenceDataset, *, test_cutoff: float | None = None,
                   valid_cutoff: float | None = None, test_fraction: float = 0.1,
                   valid_fraction: float = 0.1) -> HeldOutSplit:
    """A global temporal split: one cut-off time for all users.

    Interactions before ``valid_cutoff`` train. A user with an interaction in
    [valid_cutoff, test_cutoff) is a validation case: input = the user's interactions before
    valid_cutoff, target = the first one at or after it. A user with an interaction at or after
    test_cutoff is a test case: input = all the user's interactions before test_cutoff, target =
    the first one at or after it. Users without any interaction before the cut-off have no
    input and are left out (counted in ``skipped``).

    A cut-off not given is the time of the interaction at position ``floor(N * (1 - share))``
    of all N interaction times in order, share = test_fraction for the test cut-off and
    test_fraction + valid_fraction for the validation one.

    Raises:
        DataError: the data set has no times, the cut-offs are out of order, or no training
            sequence, validation case or test case is left.
    """
    if ds.times is None:
        raise DataError(f"{ds.name}: the temporal split needs interaction times; this data set "
                        f"has none (a raw log with a time column has them)")
    ordered = np.sort(np.concatenate(ds.times))

    def time_at_share(share: float) -> float:
        return float(ordered[min(int(len(ordered) * (1.0 - share)), len(ordered) - 1)])

    if test_cutoff is None:
        test_cutoff = time_at_share(test_fraction)
    if valid_cutoff is None:
        valid_cutoff = min(time_at_share(test_fraction + valid_fraction), test_cutoff)
    if valid_cutoff > test_cutoff:
        raise DataError(f"{ds.name}: validation cut-off {valid_cutoff} is after the test "
                        f"cut-off {test_cutoff}")
    train: list[np.ndarray] = []
    cases: dict[str, tuple[list[np.ndarray], list[int]]] = {"valid": ([], []), "test": ([], [])}
    skipped = {"valid_users_without_history": 0, "test_users_without_history": 0}
    for items, times in zip(ds.sequences, ds.times, strict=True):
        n_train = int(np.searchsorted(times, valid_cutoff, side="left"))
        n_before_test = int(np.searchsorted(times, test_cutoff, side="left"))
        if n_train:
            train.append(np.asarray(items[:n_train], dtype=np.int64))
        for name, n_before, later in (("valid", n_train, n_train < n_before_test),
                                      ("test", n_before_test, n_before_test < len(items))):
            if not later:
                continue
            if not n_before:
                skipped[f"{name}_users_without_history"] += 1
                continue
            cases[name][0].append(np.asarray(items[:n_before], dtype=np.int64))
            cases[name][1].append(int(items[n_before]))
    where = f"{ds.name}: temporal split at valid_cutoff={valid_cutoff}, test_cutoff={test_cutoff}"
    if not train:
        raise DataError(f"{where}: no interaction before the validation cut-off to train on")
    for name, (histories, _) in cases.items():
        if not histories:
            raise DataError(f"{where}: no {name} case (no user with an interaction in that "
                            f"period and one before it)")
    return HeldOutSplit(train=train, valid_histories=cases["valid"][0],
                        valid_targets=np.array(cases["valid"][1], dtype=np.int64),
                        test_histories=cases["test"][0],
                        test_targets=np.array(cases["test"][1], dtype=np.int64),
                        num_items=ds.num_items, skipped=skipped)


def in_vocabulary(ds: SequenceDataset, item_ids: list[str]) -> list[np.ndarray]:
    """The sequences of ``ds`` in the item ids of another data set (``item_ids[i - 1]`` is
    item i there); 0 marks an item that data set does not have."""
    position = {label: i for i, label in enumerate(item_ids, start=1)}
    own = np.array([0] + [position.get(label, 0) for label in ds.item_ids or []], dtype=np.int64)
    return [own[s] for s in ds.sequences]


def files_split(train: SequenceDataset, valid: SequenceDataset,
                test: SequenceDataset) -> HeldOutSplit:
    """The split of user-given files: training, validation and test interactions.

    Every training sequence trains. A user of the validation file is a validation case:
    input = the user's training sequence, target = the user's first validation interaction.
    A user of the test file is a test case: input = the training sequence followed by the
    user's validation interactions, target = the first test interaction. Users are matched by
    id and items by their original ids; a case whose target the training data does not have
    (the model cannot rank it) or whose input is empty is left out and counted in ``skipped``;
    an input item the training data lacks is dropped from the input.
    """
    if train.user_ids is None or train.item_ids is None:
        raise DataError(f"{train.name}: split files need user and item ids")
    history = dict(zip(train.user_ids, train.sequences, strict=True))
    valid_items = dict(zip(valid.user_ids or [], in_vocabulary(valid, train.item_ids),
                           strict=True))
    skipped: dict[str, int] = {}
    out: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for name, ds in (("valid", valid), ("test", test)):
        histories, targets = [], []
        for user, items in zip(ds.user_ids or [], in_vocabulary(ds, train.item_ids),
                               strict=True):
            past = history.get(user, np.zeros(0, dtype=np.int64))
            if name == "test" and user in valid_items:
                past = np.concatenate([past, valid_items[user]])
            past = past[past > 0]
            if items[0] == 0:
                skipped[f"{name}_targets_not_in_training"] = skipped.get(
                    f"{name}_targets_not_in_training", 0) + 1
            elif not len(past):
                skipped[f"{name}_users_without_history"] = skipped.get(
                    f"{name}_users_without_history", 0) + 1
            else:
                histories.append(past.astype(np.int64))
                targets.append(int(items[0]))
        if not histories:
            raise DataError(f"{ds.name}: no {name} case left: no user with a target item known "
                            f"to the training file {train.name} and a history there")
        out[name] = (histories, targets)
    return HeldOutSplit(train=[np.asarray(s, dtype=np.int64) for s in train.sequences],
                        valid_histories=out["valid"][0],
                        valid_targets=np.array(out["valid"][1], dtype=np.int64),
                        test_histories=out["test"][0],
                        test_targets=np.array(out["test"][1], dtype=np.int64),
                        num_items=train.num_items, skipped=skipped)


def evaluation_cases(ds: SequenceDataset, item_ids: list[str]
                     ) -> tuple[list[np.ndarray], np.ndarray, dict[str, int]]:
    """Cases of a file of test histories: each user's last item is the target, the earlier
    ones the input, in the item ids of a trained model (``item_ids``).

    Returns:
        inputs, targets (int64) and the counts of what was left out: cases whose target the
        model does not know, cases without a known input item, and unknown input items.
    """
    inputs, targets = [], []
    skipped = {"targets_unknown_to_the_model": 0, "cases_without_known_history": 0,
               "unknown_history_items_dropped": 0}
    for items in in_vocabulary(ds, item_ids):
        past, target = items[:-1], int(items[-1])
        skipped["unknown_history_items_dropped"] += int((past == 0).sum())
        past = past[past > 0]
        if target == 0:
            skipped["targets_unknown_to_the_model"] += 1
        elif not len(past):
            skipped["cases_without_known_history"] += 1
        else:
            inputs.append(past)
            targets.append(target)
    if not inputs:
        raise DataError(f"{ds.name}: no case to evaluate: no history with a target item and an "
                        f"input item the model knows")
    return inputs, np.array(targets, dtype=np.int64), skipped
