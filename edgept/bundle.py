"""The bundle directory (`*.edgept/`): the contract between stages and what the runtime loads.

See docs/bundle-format.md. Reading verifies every artifact's hash; writing goes through a temp
directory beside the destination that is renamed into place, so a crash never leaves half a bundle.
Standard library only: the runtime reads bundles in processes that have no torch or onnx.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from edgept.errors import BundleError
from edgept.fileio import atomic_write_text, sha256_file

SCHEMA = 1
MANIFEST = "manifest.json"
MODEL = "model.onnx"
DTYPES = ("float32", "float16", "int64", "int32", "int8", "uint8", "bool")
_RECREATE = "re-create the bundle with `edgept export`"
# Recorded, never imported: reading a version must not pull torch into a torch-free process.
_PROVENANCE_PACKAGES = ("torch", "onnx", "onnxruntime")


@dataclass(frozen=True)
class IOSpec:
    """One model input or output: `dims` entries are ints (fixed) or strings (symbolic, shared by name)."""

    name: str
    dtype: str
    dims: tuple[int | str, ...]

    @classmethod
    def from_dict(cls, d: Any, where: str) -> IOSpec:
        """Parse one `io.inputs`/`io.outputs` entry; `where` names it in errors."""
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("name"), str)
            or not isinstance(d.get("dims"), list)
        ):
            raise BundleError(
                f"{where} must be {{'name': str, 'dtype': str, 'dims': list}}, got {d!r}; {_RECREATE}"
            )
        if d.get("dtype") not in DTYPES:
            raise BundleError(
                f"{where} has dtype {d.get('dtype')!r}; allowed: {', '.join(DTYPES)}; {_RECREATE}"
            )
        for dim in d["dims"]:
            if isinstance(dim, bool) or not (
                isinstance(dim, int) and dim >= 0 or isinstance(dim, str) and dim
            ):
                raise BundleError(
                    f"{where} has dim {dim!r}; dims are ints >= 0 or symbolic names; {_RECREATE}"
                )
        return cls(name=d["name"], dtype=d["dtype"], dims=tuple(d["dims"]))

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: `{"name", "dtype", "dims"}`."""
        return {"name": self.name, "dtype": self.dtype, "dims": list(self.dims)}


def _check_relpath(name: str, where: str) -> None:
    # A manifest is untrusted input: an artifact name must not reach outside the bundle.
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name:
        raise BundleError(
            f"{where} lists artifact {name!r}, which is not a relative path inside the bundle; {_RECREATE}"
        )


class Bundle:
    """A bundle on disk, opened read-only. Use `Bundle.open(path)`."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self._path = path
        self._manifest = manifest

    @classmethod
    def open(cls, path: str | os.PathLike, verify: bool = True) -> Bundle:
        """Read `path/manifest.json`, refuse a newer schema, and (with `verify`) check every artifact's hash."""
        path = Path(path)
        if not path.exists():
            raise BundleError(
                f"bundle {path} does not exist; check the path or create it with `edgept export`"
            )
        if not path.is_dir():
            raise BundleError(
                f"{path} is a file, not a bundle; pass the *.edgept directory that holds {MANIFEST}"
            )
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise BundleError(
                f"{path} is not an edgept bundle (no {MANIFEST}); pass a directory written by `edgept export`"
            )
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{mpath} is not valid JSON ({e}); {_RECREATE}") from None
        if not isinstance(manifest, dict):
            raise BundleError(f"{mpath} must hold a JSON object, got {type(manifest).__name__}; {_RECREATE}")
        schema = manifest.get("schema")
        if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
            raise BundleError(f"{mpath} has schema {schema!r}; expected an int in 1..{SCHEMA}; {_RECREATE}")
        if schema > SCHEMA:
            raise BundleError(
                f"bundle schema {schema} is newer than this edgept (knows {SCHEMA}); upgrade edgept"
            )
        artifacts = manifest.get("artifacts")
        if not isinstance(artifacts, dict) or MODEL not in artifacts:
            raise BundleError(f"{mpath} does not list {MODEL} in 'artifacts'; {_RECREATE}")
        for name, entry in artifacts.items():
            _check_relpath(name, str(mpath))
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("sha256"), str)
                or not isinstance(entry.get("bytes"), int)
            ):
                raise BundleError(
                    f"{mpath} artifact {name!r} needs 'sha256' (str) and 'bytes' (int); {_RECREATE}"
                )
        model = path / MODEL
        if not model.is_file():
            raise BundleError(f"{model} is missing; {_RECREATE}")
        if model.stat().st_size == 0:
            raise BundleError(f"{model} is empty (0 bytes, truncated); {_RECREATE}")
        bundle = cls(path, manifest)
        if verify:
            bundle.verify()
        return bundle

    def verify(self) -> None:
        """Check every artifact's size and sha256 against the manifest; raise BundleError on the first miss."""
        for name, entry in self.artifacts.items():
            f = self._path / name
            if not f.is_file():
                raise BundleError(f"{f} is listed in the manifest but missing; {_RECREATE}")
            # The size check is free and catches truncation before hashing a large file.
            if f.stat().st_size != entry["bytes"] or sha256_file(f) != entry["sha256"]:
                raise BundleError(
                    f"{f} does not match its manifest hash (tampered or truncated); {_RECREATE}"
                )

    @property
    def path(self) -> Path:
        """The bundle directory."""
        return self._path

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest.json (treat as read-only; a writer with `base=` copies it)."""
        return self._manifest

    @property
    def artifacts(self) -> dict[str, dict[str, Any]]:
        """`{relative path: {"sha256", "bytes"}}` for every file except manifest.json."""
        return self._manifest["artifacts"]

    @property
    def model_path(self) -> Path:
        """Path of model.onnx, the model the runtime runs."""
        return self.file(MODEL)

    def file(self, name: str) -> Path:
        """Path of an artifact listed in the manifest; an unlisted or absent file is a BundleError."""
        _check_relpath(name, str(self._path / MANIFEST))
        if name not in self.artifacts:
            listed = ", ".join(sorted(self.artifacts))
            raise BundleError(f"{self._path} has no artifact {name!r} in its manifest; listed: {listed}")
        f = self._path / name
        if not f.is_file():
            raise BundleError(f"{f} is listed in the manifest but missing; {_RECREATE}")
        return f

    def _io(self, key: str) -> list[IOSpec]:
        io = self._manifest.get("io")
        entries = io.get(key) if isinstance(io, dict) else None
        if not isinstance(entries, list) or not entries:
            raise BundleError(f"{self._path / MANIFEST} has no io.{key}; {_RECREATE}")
        return [IOSpec.from_dict(e, f"{self._path / MANIFEST} io.{key}[{i}]") for i, e in enumerate(entries)]

    @property
    def inputs(self) -> list[IOSpec]:
        """The model inputs declared in `io.inputs`."""
        return self._io("inputs")

    @property
    def outputs(self) -> list[IOSpec]:
        """The model outputs declared in `io.outputs`."""
        return self._io("outputs")

    @property
    def limits(self) -> dict[str, Any]:
        """`io.limits` (vocab_size, type_vocab_size, max_sequence, image_size, channels); {} if absent."""
        io = self._manifest.get("io")
        return dict(io.get("limits") or {}) if isinstance(io, dict) else {}

    @property
    def task(self) -> str | None:
        """`model.task`, e.g. "sequence-classification"; None if not recorded."""
        return (self._manifest.get("model") or {}).get("task")

    @property
    def labels(self) -> list[str] | None:
        """`model.labels` for classification bundles, else None."""
        return (self._manifest.get("model") or {}).get("labels")

    @property
    def preprocess(self) -> dict[str, Any] | None:
        """The `preprocess` section (kind text or image), or None."""
        return self._manifest.get("preprocess")

    @property
    def passes(self) -> list[dict[str, Any]]:
        """The append-only list of `{pass, config, metrics}` the bundle went through."""
        return list(self._manifest.get("passes") or [])

    def __repr__(self) -> str:
        return f"Bundle({str(self._path)!r}, task={self.task!r})"


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(src, dst)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _provenance() -> dict[str, Any]:
    prov: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
    }
    for pkg in _PROVENANCE_PACKAGES:
        try:
            prov[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            prov[pkg] = None
    return prov


class BundleWriter:
    """Write a bundle atomically: `with BundleWriter(dest) as w:` write files into `w.dir`, fill `w.manifest`.

    With `base` (a Bundle or its path) the base's files are hard-linked (copied across filesystems)
    into `w.dir` and its manifest inherited, so a later stage only adds files and appends a pass.
    An inherited file may share its inode with the base bundle: replace it via `w.path(name)` or
    `edgept.fileio.atomic_write_*`, never by opening it for writing in place.
    A seed goes in `w.manifest["seed"]` (or `w.manifest["provenance"]["seed"]`) and ends up in
    provenance. On a clean exit the artifacts table, schema, version, time and provenance are filled in,
    manifest.json is written and the directory renamed to `dest`. On any exception (Ctrl-C
    included) the temp directory is removed and `dest` is left as it was.
    """

    def __init__(
        self, dest: str | os.PathLike, overwrite: bool = False, base: Bundle | str | os.PathLike | None = None
    ):
        self.dest = Path(dest).absolute()
        self.overwrite = overwrite
        self.base = base if isinstance(base, Bundle) or base is None else Bundle.open(base)
        self._dir: Path | None = None
        self.manifest: dict[str, Any] = {"passes": []}

    @property
    def dir(self) -> Path:
        """The temp directory (`.<name>.tmp-<random>` beside dest) that the stage writes into."""
        if self._dir is None:
            raise RuntimeError("BundleWriter.dir is only available inside `with BundleWriter(...) as w:`")
        return self._dir

    def path(self, name: str) -> Path:
        """A path in `w.dir` that is safe to open for writing: an inherited hard link there is unlinked first."""
        _check_relpath(name, "BundleWriter.path")
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.unlink(missing_ok=True)
        return p

    def add_pass(self, name: str, config: dict[str, Any], metrics: dict[str, Any]) -> None:
        """Append `{"pass": name, "config": config, "metrics": metrics}` to the manifest's passes."""
        self.manifest.setdefault("passes", []).append(
            {"pass": name, "config": dict(config), "metrics": dict(metrics)}
        )

    def _check_dest(self) -> None:
        if not os.path.lexists(self.dest):
            return
        if not self.overwrite:
            raise BundleError(
                f"{self.dest} already exists; pass --force (overwrite=True) to replace it, or choose another path"
            )
        # Overwrite deletes the old directory: only ever do that to a bundle, never to a user's folder.
        if not (self.dest.is_dir() and not self.dest.is_symlink() and (self.dest / MANIFEST).is_file()):
            raise BundleError(
                f"refusing to overwrite {self.dest}: it is not an edgept bundle (no {MANIFEST}); remove it or choose another path"
            )

    def __enter__(self) -> BundleWriter:
        self._check_dest()
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self._dir = self.dest.parent / f".{self.dest.name}.tmp-{secrets.token_hex(4)}"
        self._dir.mkdir()
        try:
            if self.base is not None:
                for name in self.base.artifacts:
                    _link_or_copy(self.base.path / name, self._dir / name)
                inherited = copy.deepcopy(self.base.manifest)
                for key in ("schema", "edgept_version", "created", "artifacts"):
                    inherited.pop(key, None)
                inherited.setdefault("passes", [])
                self.manifest = inherited
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self._dir is not None and self._dir.exists():
                shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        return False

    def _artifacts(self) -> dict[str, dict[str, Any]]:
        base_art = self.base.artifacts if self.base is not None else {}
        out: dict[str, dict[str, Any]] = {}
        for f in sorted(self.dir.rglob("*")):
            rel = f.relative_to(self.dir).as_posix()
            if f.is_symlink():
                raise BundleError(
                    f"bundle files must be regular files; {rel} is a symlink (copy the file instead)"
                )
            if f.is_dir() or rel == MANIFEST:
                continue
            entry = {"sha256": sha256_file(f), "bytes": f.stat().st_size}
            old = base_art.get(rel)
            # A stage that opened an inherited hard link for writing changed the base bundle too: fail loudly.
            if old is not None and entry["sha256"] != old["sha256"] and _same_file(f, self.base.path / rel):
                raise BundleError(
                    f"{rel} was modified in place and it is hard-linked to {self.base.path / rel}, which is now "
                    f"corrupted; write it via BundleWriter.path(name) and re-create {self.base.path}"
                )
            out[rel] = entry
        return out

    def _commit(self) -> None:
        from edgept import __version__

        model = self.dir / MODEL
        if not model.is_file() or model.stat().st_size == 0:
            raise BundleError(
                f"refusing to write bundle {self.dest}: the stage left no non-empty {MODEL} in it"
            )
        stage_keys = {
            k: v
            for k, v in self.manifest.items()
            if k not in ("schema", "edgept_version", "created", "artifacts", "provenance")
        }
        provenance = {**(self.manifest.get("provenance") or {}), **_provenance()}
        if "seed" in stage_keys:  # a stage may set w.manifest["seed"]; the contract keeps it in provenance
            provenance["seed"] = stage_keys.pop("seed")
        manifest = {
            "schema": SCHEMA,
            "edgept_version": __version__,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **stage_keys,
            "artifacts": self._artifacts(),
            "provenance": provenance,
        }
        atomic_write_text(self.dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        self.manifest = manifest
        self._check_dest()  # it may have appeared while the stage ran
        if os.path.lexists(self.dest):
            old = self.dest.parent / f".{self.dest.name}.old-{secrets.token_hex(4)}"
            os.rename(self.dest, old)
            try:
                os.rename(self.dir, self.dest)
            except BaseException:
                os.rename(old, self.dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.dir, self.dest)
