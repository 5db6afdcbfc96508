"""The two rich consoles every command prints through: results to stdout, messages to stderr."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

out = Console()
err = Console(stderr=True)


@contextmanager
def working(what: str, *, log_steps: bool = False) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr saying `what` while the block runs; yields `say(step)`, which shows
    "what: step". Where stderr is not a terminal (a log file, CI) a spinner prints nothing; with
    `log_steps` (for runs of hours, whose logs must show where they are) each step is then a line of
    its own. Other commands stay silent there, so a user error is still the only line on stderr."""
    if err.is_terminal:
        with err.status(f"{what} ...") as status:
            yield lambda step: status.update(f"{what}: {step}")
    elif log_steps:
        yield lambda step: err.print(f"{what}: {step}", highlight=False, soft_wrap=True)
    else:
        yield lambda step: None


def parse_ints(value: str, flag: str) -> tuple[int, ...]:
    """'1,8' -> (1, 8) for list flags like --batch; a bad value is a one-line user error."""
    from edgept.errors import ConfigError

    try:
        items = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated whole numbers like 1,8; got {value!r}") from None
    if not items or any(i <= 0 for i in items):
        raise ConfigError(f"{flag} takes positive whole numbers like 1,8; got {value!r}")
    return items
