"""Which teacher layer each student layer learns from (TinyBERT's mapping function g).

Layers are numbered from 1, as in the paper: student layer m (1..M) learns from teacher layer
g(m) (1..N); layer 0 is the embedding output on both sides, g(0) = 0 always. Everything is
checked here, before a model is built or a batch is read, so a bad map fails in the first
second rather than mid-training (huawei-noah/Pretrained-Language-Model#166).
"""

from __future__ import annotations

from edgept.errors import ConfigError


def uniform_layer_map(student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """TinyBERT's uniform strategy g(m) = m * N / M, floored when M does not divide N.

    E.g. 4 of 12 -> (3, 6, 9, 12); 4 of 6 -> (1, 3, 4, 6). The last student layer always
    learns from the last teacher layer.
    """
    _check_counts(student_layers, teacher_layers)
    return tuple(m * teacher_layers // student_layers for m in range(1, student_layers + 1))


def _check_counts(student_layers: int, teacher_layers: int) -> None:
    if student_layers < 1 or teacher_layers < 1:
        raise ConfigError(f"layer counts must be positive, got student {student_layers}, teacher {teacher_layers}")
    if student_layers > teacher_layers:
        raise ConfigError(
            f"the student has {student_layers} layers but the teacher only {teacher_layers}; "
            f"give the student at most {teacher_layers} layers (--layers)"
        )


def parse_layer_map(text: str) -> tuple[int, ...]:
    """'2,4,6' -> (2, 4, 6); anything else is a one-line ConfigError."""
    try:
        items = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--layer-map takes comma-separated teacher layer numbers like 2,4,6; got {text!r}") from None
    return items


def check_layer_map(layer_map: tuple[int, ...], student_layers: int, teacher_layers: int) -> tuple[int, ...]:
    """Validate a custom map: one teacher layer per student layer, each in 1..N, strictly increasing.

    Returns the map unchanged; each violation is a one-line ConfigError naming the value and the
    allowed range.
    """
    _check_counts(student_layers, teacher_layers)
    given = ",".join(map(str, layer_map))
    if len(layer_map) != student_layers:
        raise ConfigError(
            f"--layer-map {given} has {len(layer_map)} entries but the student has {student_layers} layers; "
            f"give exactly one teacher layer per student layer, e.g. "
            f"{','.join(map(str, uniform_layer_map(student_layers, teacher_layers)))}"
        )
    for m, layer in enumerate(layer_map, start=1):
        if not 1 <= layer <= teacher_layers:
            raise ConfigError(
                f"--layer-map {given}: entry {m} is teacher layer {layer}, outside the teacher's layers "
                f"1..{teacher_layers}"
            )
    for m in range(1, len(layer_map)):
        if layer_map[m] <= layer_map[m - 1]:
            raise ConfigError(
                f"--layer-map {given}: entries must be strictly increasing, but entry {m + 1} ({layer_map[m]}) "
                f"follows {layer_map[m - 1]}"
            )
    return layer_map


def resolve_layer_map(
    layer_map: tuple[int, ...] | None, student_layers: int, teacher_layers: int
) -> tuple[int, ...]:
    """The checked custom map, or the uniform one when `layer_map` is None."""
    if layer_map is None:
        return uniform_layer_map(student_layers, teacher_layers)
    return check_layer_map(tuple(layer_map), student_layers, teacher_layers)
