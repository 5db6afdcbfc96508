"""What every frozen keyword-only config shares: `replace`, `to_dict`, and a `from_dict` that
refuses unknown keys (listing the allowed ones), turns JSON lists back into tuple fields, and
validates through the constructor."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from edgept.errors import ConfigError


class DictConfig:
    """Mixin for `@dataclass(frozen=True, kw_only=True)` configs; `kind` names it in errors.

    A config holding nested configs overrides `_coerce` to rebuild them from their dicts.
    """

    kind: ClassVar[str] = "config"

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ConfigError(f"unknown {cls.kind} keys {unknown}; allowed: {sorted(fields)}")
        # JSON has no tuples: a list read back into a tuple-typed field becomes a tuple again.
        d = {k: tuple(v) if isinstance(v, list) and "tuple" in str(fields[k].type) else v for k, v in d.items()}
        try:
            return cls(**cls._coerce(d))
        except TypeError as e:  # a value of the wrong type in a hand-edited file
            raise ConfigError(f"invalid {cls.kind}: {e}") from None

    @classmethod
    def _coerce(cls, d: dict[str, Any]) -> dict[str, Any]:
        return d
