"""A rich progress bar for training: steps, loss, examples per second, time left (stderr)."""

from __future__ import annotations

from typing import Any


class TrainProgress:
    """Context manager; `update(step, record)` after each optimizer step. Disabled: does nothing."""

    def __init__(self, total: int, completed: int, enabled: bool = True):
        self.enabled = enabled
        self._progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[speed]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._progress.add_task("train", total=total, completed=completed, loss="-", speed="")

    def __enter__(self) -> TrainProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, record: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=step,
                loss=f"{record['loss']:.4f}",
                speed=_speed(record),
            )


def _speed(record: dict[str, Any]) -> str:
    """Examples per second, and tokens per second when the objective logs tokens_per_example (pre-training)."""
    speed = f"{record['examples_per_s']:.0f} ex/s"
    if "tokens_per_example" in record:
        speed += f", {record['tokens_per_example'] * record['examples_per_s']:.0f} tok/s"
    return speed
