"""`fit`: the one training loop (finetune, distill, factorize --recover and pretrain all use it)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from edgept.errors import ConfigError
from edgept.fileio import atomic_write_text
from edgept.train import distributed as D
from edgept.train.config import TrainConfig
from edgept.train.objectives import Objective
from edgept.train.progress import TrainProgress
from edgept.train.schedule import WarmupLinear, parameter_groups
from edgept.train.state import capture_rng, load_latest, restore_rng, save_state

LOG_FILE = "train_log.jsonl"
MODEL_DIR = "model"
CHECKPOINTS = "checkpoints"

Collate = Callable[[list[Any]], dict[str, Tensor]]
Evaluate = Callable[[nn.Module], dict[str, float]]


@dataclass(frozen=True)
class FitResult:
    """best_metric/best_step: the best dev evaluation (None without `evaluate`); steps: optimizer
    steps taken (fewer than planned after early stopping); history: every evaluation record."""

    best_metric: float | None
    best_step: int | None
    steps: int
    history: list[dict] = field(default_factory=list)


def fit(
    objective: Objective,
    train: Sequence[Any],
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    collate: Collate,
    evaluate: Evaluate | None = None,
    resume: bool = False,
    progress: bool = True,
    source: str | os.PathLike | None = None,
) -> FitResult:
    """Train `objective` on `train` (indexable examples, batched by `collate`) as `config` says.

    Writes out_dir/model (the best model by `evaluate`'s `config.metric`, or the last one without
    `evaluate`: an HF checkpoint dir with tokenizer files copied from `source`),
    out_dir/checkpoints/step-N (see edgept.train.state) and out_dir/train_log.jsonl. `resume`
    continues from the newest checkpoint to the result an uninterrupted run gives. On return,
    `objective.model` holds the best weights. `nproc` > 1 spawns that many processes (or joins
    torchrun's), so `objective`, `train`, `collate` and `evaluate` must pickle (no lambdas).
    """
    out = Path(out_dir)
    if config.nproc > 1 and not D.under_torchrun():
        import torch.multiprocessing as mp

        args = (config.nproc, D.free_port(), objective, train, config, out, collate, evaluate, resume, progress, source)
        try:
            mp.spawn(_worker, args=args, nprocs=config.nproc)
        except mp.ProcessRaisedException as e:
            raise D.user_error(e) or e from None
        result = _result_from_log(out / LOG_FILE)
    else:
        world = D.init(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), None) if D.under_torchrun() else D.World()
        result = _Run(objective, train, config, out, collate, evaluate, progress, source, world).run(resume)
    from edgept.models.hf import load_model

    objective.model.load_state_dict(load_model(out / MODEL_DIR).state_dict())
    return result


def _worker(rank: int, size: int, port: int, objective: Objective, *args: Any) -> None:
    train, config, out, collate, evaluate, resume, progress, source = args
    # torch.multiprocessing hands CPU tensors over in shared memory: without a private copy every
    # process would step the same weights. Copied before joining the group, so before any step.
    objective = copy.deepcopy(objective)
    if not torch.cuda.is_available():  # processes share the cores rather than oversubscribe them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    world = D.init(rank, size, port)
    try:
        _Run(objective, train, config, out, collate, evaluate, progress, source, world).run(resume)
    except BaseException:
        D.shutdown(world)
        raise
    D.shutdown(world, synchronize=True)


def _result_from_log(path: Path) -> FitResult:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    end = next(r for r in reversed(records) if r["kind"] == "end")
    return FitResult(end["best_metric"], end["best_step"], end["steps"], [r for r in records if r["kind"] == "eval"])


class _Run:
    """One process's share of a training run; the main process also evaluates and writes."""

    def __init__(self, objective, train, config, out, collate, evaluate, progress, source, world: D.World):
        self.objective, self.train, self.config, self.out = objective, train, config, out
        self.collate, self.evaluate, self.source, self.world = collate, evaluate, source, world
        self.show_progress = progress and world.main
        self.device = world.device()
        n = len(train)
        if n < world.size:
            raise ConfigError(f"{n} training examples cannot be shared by {world.size} processes; add examples")
        self.steps_per_epoch = len(self._batches(0))
        self.total = config.max_steps or math.ceil(config.epochs * self.steps_per_epoch)
        self.eval_every = config.eval_every or self.steps_per_epoch
        self.save_every = config.save_every or self.eval_every
        objective.to(self.device)
        self.params = [p for p in objective.parameters() if p.requires_grad]
        if not self.params:
            raise ConfigError(f"{type(objective).__name__} has no trainable parameters (nothing requires_grad)")
        self.opt = torch.optim.AdamW(parameter_groups(objective, config.weight_decay), lr=config.lr)
        warmup = math.ceil(config.warmup * self.total)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, WarmupLinear(warmup, self.total))
        self.step, self.best, self.best_step, self.bad, self.stopped = 0, None, None, 0, False
        self.log: list[dict] = []

    def _batches(self, epoch: int) -> list[np.ndarray]:
        """The epoch's global batches, from a permutation seeded by (seed, epoch) alone, so the
        order is known again on resume. A last batch with fewer examples than processes is dropped."""
        n, b = len(self.train), self.config.batch_size
        order = np.random.default_rng([self.config.seed, epoch]).permutation(n)
        batches = [order[i : i + b] for i in range(0, n, b)]
        return batches if len(batches[-1]) >= self.world.size else batches[:-1]

    def run(self, resume: bool) -> FitResult:
        self._start(resume)
        bar = TrainProgress(self.total, self.step, enabled=self.show_progress)
        stop = self.stopped
        with bar:
            while self.step < self.total and not stop:
                epoch, position = divmod(self.step, self.steps_per_epoch)
                for batch in self._batches(epoch)[position:]:
                    record = self._train_step(batch)
                    bar.update(self.step, record)
                    if self.step % self.eval_every == 0 or self.step == self.total:
                        stop = self.stopped = self._evaluate()
                    if self.step % self.save_every == 0 or self.step == self.total or stop:
                        self._checkpoint()
                    if stop or self.step >= self.total:
                        break
        if self.evaluate is None and self.world.main:
            self._save_model()
        result = FitResult(self.best, self.best_step, self.step, [r for r in self.log if r["kind"] == "eval"])
        self._append({"kind": "end", "best_metric": self.best, "best_step": self.best_step, "steps": self.step})
        return result

    def _start(self, resume: bool) -> None:
        random.seed(self.config.seed + self.world.rank)
        np.random.seed(self.config.seed + self.world.rank)
        torch.manual_seed(self.config.seed + self.world.rank)
        checkpoints = self.out / CHECKPOINTS
        state = load_latest(checkpoints) if resume else None
        if state is None:
            if not resume and any(checkpoints.glob("step-*")):
                raise ConfigError(
                    f"{self.out} holds checkpoints of an earlier run; pass --resume to continue it or choose another output directory"
                )
            if self.world.main:
                self.out.mkdir(parents=True, exist_ok=True)
                atomic_write_text(self.out / LOG_FILE, "")
            return
        # A checkpoint from before a setting existed ran with that setting's default.
        saved = {f.name: f.default for f in dataclasses.fields(TrainConfig)} | state["config"]
        if saved != self.config.to_dict():
            changed = sorted(k for k, v in self.config.to_dict().items() if saved.get(k) != v)
            raise ConfigError(
                f"--resume continues the run in {self.out} with its own settings, but {', '.join(changed)} differ; "
                "use the original settings or start a new output directory"
            )
        if len(state["rng"]) != self.world.size:
            raise ConfigError(f"the checkpoint in {checkpoints} was written by {len(state['rng'])} processes; resume with --nproc {len(state['rng'])}")
        self.objective.load_state_dict(state["objective"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        restore_rng(state["rng"][self.world.rank])
        self.step, self.best, self.best_step = state["step"], state["best"], state["best_step"]
        self.bad, self.stopped = state["bad"], state["stopped"]
        self.log = state["log"]
        if self.world.main:  # drop what the interrupted run logged after its last checkpoint
            atomic_write_text(self.out / LOG_FILE, "".join(json.dumps(r) + "\n" for r in self.log))

    def _train_step(self, indices: np.ndarray) -> dict:
        started = time.perf_counter()
        mine = D.share(indices, self.world)
        batch = {k: v.to(self.device) for k, v in self.collate([self.train[int(i)] for i in mine]).items()}
        self.objective.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"):
            loss, logs = self.objective(batch)
        # Weighted by this process's share so that averaging over processes gives the global-batch mean.
        (loss * (len(mine) * self.world.size / len(indices))).backward()
        D.average_gradients(self.params, self.world)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        lr = self.sched.get_last_lr()[0]
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        values = self._global_mean({"loss": loss.item(), **logs}, len(mine), len(indices))
        seconds = time.perf_counter() - started
        record = {"kind": "train", "step": self.step, "epoch": round(self.step / self.steps_per_epoch, 4), "lr": lr, **values, "examples_per_s": len(indices) / seconds}
        self._append(record)
        return record

    def _global_mean(self, values: dict[str, float], mine: int, total: int) -> dict[str, float]:
        if not self.world.distributed:
            return values
        t = torch.tensor([v * mine for v in values.values()], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return {k: float(v) / total for k, v in zip(values, t.tolist(), strict=True)}

    def _evaluate(self) -> bool:
        """Evaluate on the main process, share the verdict; True when early stopping says stop."""
        if self.evaluate is None:
            return False
        metrics = None
        if self.world.main:
            self.objective.eval()
            with torch.no_grad():
                metrics = dict(self.evaluate(self.objective.model))
            if self.config.metric not in metrics:
                raise ConfigError(f"metric {self.config.metric!r} is not among the evaluation's: {', '.join(metrics)}")
        metrics = D.broadcast(metrics, self.world)
        value = float(metrics[self.config.metric])
        better = self.best is None or (value > self.best if self.config.greater_is_better else value < self.best)
        if better:
            self.best, self.best_step, self.bad = value, self.step, 0
            if self.world.main:
                self._save_model()
        else:
            self.bad += 1
        stop = self.config.patience is not None and self.bad >= self.config.patience
        self._append({"kind": "eval", "step": self.step, **metrics, "best": better, "early_stop": stop})
        return stop

    def _save_model(self) -> None:
        from edgept.models.hf import save_model

        save_model(self.objective.model, self.out / MODEL_DIR, source=self.source, overwrite=True)

    def _checkpoint(self) -> None:
        rng = D.gather(capture_rng(), self.world)  # every process's, so each resumes its own stream
        if not self.world.main:
            return
        state = {
            "objective": {k: v.detach().cpu() for k, v in self.objective.state_dict().items()},
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "rng": rng,
            "step": self.step,
            "best": self.best,
            "best_step": self.best_step,
            "bad": self.bad,
            "stopped": self.stopped,
            "log": self.log,
            "config": self.config.to_dict(),
        }
        save_state(self.out / CHECKPOINTS, self.step, state)

    def _append(self, record: dict) -> None:
        self.log.append(record)
        if self.world.main:
            with open(self.out / LOG_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
