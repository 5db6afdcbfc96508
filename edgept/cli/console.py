"""The two rich consoles every command prints through: results to stdout, messages to stderr."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)


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
