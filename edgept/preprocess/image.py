"""Images -> float32 NCHW pixel_values with the numerics of HF's ViTImageProcessor (Pillow imported lazily)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from edgept.errors import ConfigError, InputError, MissingDependencyError
from edgept.fileio import read_json

# PIL's Image.Resampling values, which HF stores as `resample` in preprocessor_config.json.
RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}


def _pair(raw: Any, what: str) -> tuple[int, int] | None:
    """An (h, w) from an int, a [h, w] list or HF's {"height", "width"} dict."""
    v = raw
    if v is None:
        return None
    if isinstance(v, dict):
        v = (v.get("height"), v.get("width"))
    elif isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if (
        not isinstance(v, list | tuple)
        or len(v) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)
    ):
        raise ConfigError(f"{what} must be [height, width] of positive ints, got {raw!r}")
    return (int(v[0]), int(v[1]))


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError(
            "reading or resizing images needs Pillow, which is not installed; pip install 'edgept[images]'"
        ) from None
    return Image


@dataclass(frozen=True, kw_only=True)
class ImagePreprocessor:
    """Images -> float32 NCHW `pixel_values`: resize (Pillow), center crop, rescale, normalize.

    Resize either to `size` (h, w) or, with `shortest_edge`, the short side to that many pixels
    keeping the aspect ratio (DINOv2/BiT); neither means no resize. `crop_size` center-crops after
    resizing (DeiT, DINOv2). The output size is `crop_size or size`.
    """

    size: tuple[int, int] | None = (224, 224)
    shortest_edge: int | None = None
    crop_size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    rescale: float = 1 / 255
    resample: str = "bilinear"
    channels: int = 3

    def __post_init__(self) -> None:
        # Normalize JSON lists to tuples so that equal configs compare and hash equal.
        object.__setattr__(self, "size", _pair(self.size, "size"))
        object.__setattr__(self, "crop_size", _pair(self.crop_size, "crop_size"))
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels!r}")
        if self.size is not None and self.shortest_edge is not None:
            raise ConfigError(
                f"give size or shortest_edge, not both (size={self.size}, shortest_edge={self.shortest_edge})"
            )
        if self.shortest_edge is not None and not (
            isinstance(self.shortest_edge, int) and self.shortest_edge > 0
        ):
            raise ConfigError(f"shortest_edge must be a positive int, got {self.shortest_edge!r}")
        for name in ("mean", "std"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != self.channels:
                raise ConfigError(
                    f"{name} has {len(v)} values but channels is {self.channels}; give one per channel"
                )
            object.__setattr__(self, name, v)
        if min(self.std) <= 0:
            raise ConfigError(f"std values must be > 0, got {list(self.std)}")
        if self.resample not in RESAMPLE:
            raise ConfigError(f"resample {self.resample!r} is not one of: {', '.join(RESAMPLE)}")
        if not self.rescale > 0:
            raise ConfigError(
                f"rescale must be > 0 (1/255 for uint8 images, 1.0 for none), got {self.rescale!r}"
            )

    @property
    def output_size(self) -> tuple[int, int] | None:
        """(h, w) of the output, or None when it depends on the input (shortest_edge without crop)."""
        return self.crop_size or self.size

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike, config: Any = None) -> ImagePreprocessor:
        """Read an HF preprocessor_config.json (ViT, DeiT, BiT/DINOv2); defaults when absent.

        Image size and channels default to `config.image_size`/`config.num_channels` (an edgept ViT
        config, or anything with those attributes), else to config.json's, else 224 and 3.
        """
        d = Path(directory)
        if not d.is_dir():
            raise InputError(f"checkpoint directory {d} does not exist; check the path")
        model = read_json(d / "config.json") if (d / "config.json").is_file() else {}
        image_size = getattr(config, "image_size", model.get("image_size", 224))
        channels = int(getattr(config, "num_channels", model.get("num_channels", 3)))
        pp_path = d / "preprocessor_config.json"
        if not pp_path.is_file():
            return cls(
                size=_pair(image_size, "the model's image_size"),
                channels=channels,
                mean=(0.5,) * channels,
                std=(0.5,) * channels,
            )
        pp = read_json(pp_path)
        size = shortest = crop = None
        if pp.get("do_resize", True):
            raw = pp.get("size", image_size)
            if isinstance(raw, dict) and "shortest_edge" in raw:
                shortest = int(raw["shortest_edge"])
            else:
                size = _pair(raw, f"{pp_path} size")
        if pp.get("do_center_crop", False):
            if pp.get("crop_size") is None:
                raise ConfigError(
                    f"{pp_path} sets do_center_crop but no crop_size; add crop_size {{height, width}}"
                )
            crop = _pair(pp["crop_size"], f"{pp_path} crop_size")
        resample = {v: k for k, v in RESAMPLE.items()}.get(pp.get("resample", 2))
        if resample is None:
            raise ConfigError(
                f"{pp_path} resample {pp.get('resample')!r} is not a PIL filter; allowed: {sorted(RESAMPLE.values())}"
            )
        mean, std = (0.0,) * channels, (1.0,) * channels
        if pp.get("do_normalize", True):
            mean, std = (pp.get(k, 0.5) for k in ("image_mean", "image_std"))
            mean = tuple(mean) if isinstance(mean, list) else (mean,) * channels
            std = tuple(std) if isinstance(std, list) else (std,) * channels
        rescale = float(pp.get("rescale_factor", 1 / 255)) if pp.get("do_rescale", True) else 1.0
        return cls(
            size=size,
            shortest_edge=shortest,
            crop_size=crop,
            mean=mean,
            std=std,
            rescale=rescale,
            resample=resample,
            channels=channels,
        )

    def _to_uint8(self, image: Any, i: int) -> np.ndarray:
        """One image -> uint8 HxWxC with C == self.channels."""
        if isinstance(image, str | os.PathLike):
            mode = "RGB" if self.channels == 3 else "L"
            try:
                with _pil().open(image) as im:
                    return np.asarray(im.convert(mode)).reshape(im.height, im.width, self.channels)
            except OSError as e:
                raise InputError(
                    f"cannot read image {image} ({e}); pass a PNG/JPEG file, a PIL image or a uint8 array"
                ) from None
        if type(image).__module__.startswith("PIL."):
            image = np.asarray(image.convert("RGB" if self.channels == 3 else "L"))
        if not isinstance(image, np.ndarray):
            raise InputError(
                f"image {i} is a {type(image).__name__}; pass PIL images, file paths or uint8 numpy arrays"
            )
        if image.dtype != np.uint8:
            raise InputError(
                f"image {i} has dtype {image.dtype}; expected uint8 HxW or HxWxC (convert with np.clip(x*255, 0, 255).astype(np.uint8))"
            )
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
            raise InputError(f"image {i} has shape {image.shape}; expected HxW or HxWxC with C in 1, 3, 4")
        image = image[:, :, :3]  # drop alpha, as PIL's convert("RGB") does
        if self.channels == 3 and image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        elif self.channels == 1 and image.shape[2] == 3:
            image = np.asarray(_pil().fromarray(image).convert("L"))[:, :, None]
        return image

    def _resize(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.size is not None:
            target = self.size
        elif self.shortest_edge is not None:
            # HF's get_resize_output_image_size(default_to_square=False): the long side is truncated, not rounded.
            s = self.shortest_edge
            target = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
        else:
            return image
        # PIL returns an unchanged copy at the same size, so skipping keeps parity and needs no Pillow.
        if (h, w) == tuple(target):
            return image
        pil = _pil().fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
        out = np.asarray(pil.resize((target[1], target[0]), resample=RESAMPLE[self.resample]))
        return out.reshape(target[0], target[1], image.shape[2])

    def __call__(self, images: Any) -> np.ndarray:
        """Images (PIL, paths, uint8 HxW/HxWxC arrays; one or a list) -> float32 (N, C, H, W)."""
        if isinstance(images, str | os.PathLike | np.ndarray) or type(images).__module__.startswith("PIL."):
            images = [images]
        mean = np.array(self.mean, dtype=np.float32)
        std = np.array(self.std, dtype=np.float32)
        out = []
        for i, image in enumerate(images):
            a = self._resize(self._to_uint8(image, i))
            if self.crop_size is not None:
                (h, w), (ch, cw) = a.shape[:2], self.crop_size
                if h < ch or w < cw:
                    raise InputError(
                        f"image {i} is {h}x{w} after resizing, smaller than crop_size {ch}x{cw}; use larger images"
                    )
                top, left = (h - ch) // 2, (w - cw) // 2
                a = a[top : top + ch, left : left + cw]
            # Same order and precision as HF: rescale in float64, cast to float32, then normalize.
            x = (a.astype(np.float64) * self.rescale).astype(np.float32)
            out.append(((x - mean) / std).transpose(2, 0, 1))
        if not out:
            h, w = self.output_size or (0, 0)
            return np.zeros((0, self.channels, h, w), dtype=np.float32)
        shapes = {o.shape for o in out}
        if len(shapes) > 1:
            raise InputError(
                f"images came out in different sizes {sorted(shapes)}; set size or crop_size to batch them"
            )
        return np.ascontiguousarray(np.stack(out))

    def to_dict(self) -> dict[str, Any]:
        """The manifest `preprocess` section (`kind: image`); unset optional fields are left out."""
        d: dict[str, Any] = {"kind": "image"}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name in ("shortest_edge", "crop_size"):
                continue
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImagePreprocessor:
        """Rebuild from a `preprocess` section written by `to_dict`."""
        allowed = ["kind", *(f.name for f in fields(cls))]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)} in the image preprocess section; allowed: {', '.join(allowed)}"
            )
        if d.get("kind") != "image":
            raise ConfigError(f"an image preprocess section needs kind 'image', got {d.get('kind')!r}")
        return cls(**{k: v for k, v in d.items() if k != "kind"})
