"""``load_category``: one published category as arrow tables, numpy arrays and lazy images.

    cat = load_category("data/published/demo")                  # a publish target's category
    cat = load_category("hf://datasets/OWNER/NAME/electronics", include=["embeddings/*.npy",
                        "node_attributes/*", "edges.parquet", "splits.parquet", "*.json"])
    cat.nodes            # pyarrow.Table: asin, title, desc, class, reviews, node_id (row i = node i)
    cat.embeddings("combined")          # numpy float32 [N, d], memory-mapped from the .npy
    cat.image(cat.nodes["asin"][0].as_py())   # PIL image, decoded when used

Needs numpy and pyarrow only; torch is imported when a tensor is asked for, PIL for images,
and torch_geometric / dgl / datasets by their adapters (``acmmg.adapters``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from acmmg.download import PARTIAL_MANIFEST, download_category
from acmmg.errors import UserError
from acmmg.layout import IMAGES_TAR, LATEST, MANIFEST, parse_manifest

SPLITS = ("train", "val", "test")
EMBEDDINGS = ("image", "title", "description", "combined")
DATA_DIR_ENV = "ACMMG_DATA"


def default_data_dir() -> Path:
    """Where ``load_category`` keeps downloads: ``$ACMMG_DATA`` or ``~/.cache/acmmg/data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "acmmg" / "data")


def _split_source(source: str) -> tuple[str, str]:
    """``(publish target, slug)`` of ``.../<target>/<slug>`` (the slug is the last part)."""
    head, _, slug = source.rstrip("/").rpartition("/")
    if not head or not slug:
        raise UserError(f"{source}: expected TARGET/CATEGORY, e.g. hf://datasets/OWNER/NAME/demo")
    return head, slug


def load_category(
    source: str | os.PathLike,
    version: str | None = None,
    include: list[str] | str | None = None,
    exclude: list[str] | str | None = None,
    cache_dir: str | os.PathLike | None = None,
    storage_options: dict | None = None,
    verify: bool = False,
    public_key: str | os.PathLike | None = None,
) -> Category:
    """Open a published category, downloading (with verification) where it is not local.

    ``source``: a category folder (one holding manifest.json, e.g. a download), a publish
    target's category (``TARGET/<slug>``: a local path, http(s) or fsspec URL, or
    ``hf://datasets/OWNER/NAME/<slug>``). Remote and target sources are downloaded into
    ``cache_dir/<hash of the target>/<slug>`` (default ``$ACMMG_DATA`` or
    ``~/.cache/acmmg/data``) by ``acmmg.download.download_category``: every file checked
    against the manifest, the version recomputed from it, ``include`` / ``exclude`` for a
    partial download; ``public_key``: a pinned key the manifest's signature must verify with
    (``acmmg.signing``). ``verify=True`` re-hashes a local folder's files against its manifest.
    """
    text = os.fspath(source)
    local = Path(text) if "://" not in text and not text.startswith("hf:") else None
    if local is not None and local.is_dir() and not (local / LATEST).exists():
        if version is not None or include is not None or exclude is not None:
            raise UserError(
                f"{local} is a category folder: version / include / exclude apply to downloads "
                "(pass the publish target's TARGET/CATEGORY instead)"
            )
        cat = Category(local)
        if verify:
            cat.verify()
        return cat
    if text.startswith("hf:") and text.rstrip("/").count("/") < (5 if "://" in text else 2):
        raise UserError(f"{text}: name the category too: hf://datasets/OWNER/NAME/CATEGORY")
    target, slug = _split_source(str(local.resolve()) if local is not None else text)
    key = hashlib.sha256(target.encode()).hexdigest()[:16]
    dest = Path(cache_dir) if cache_dir is not None else default_data_dir()
    out = download_category(
        slug,
        target,
        dest / key,
        version=version,
        storage_options=storage_options,
        include=include,
        exclude=exclude,
        public_key=public_key,
    )
    return Category(out)


class Category:
    """A category folder in the ACMMG layout. Node i is row i of every table and array."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"{self.root}: no such category folder")
        self.complete = (self.root / MANIFEST).is_file()
        mpath = self.root / (MANIFEST if self.complete else PARTIAL_MANIFEST)
        self.manifest: dict = (
            parse_manifest(mpath.read_bytes(), str(self.root)) if mpath.is_file() else {}
        )
        self._tar_index: dict[str, tuple[int, int]] | None = None

    def __repr__(self) -> str:
        state = "" if self.complete else ", partial"
        return f"Category({self.name!r}, version={self.version!r}, root={str(self.root)!r}{state})"

    @property
    def name(self) -> str:
        return str(self.manifest.get("category") or self.root.name)

    @property
    def version(self) -> str | None:
        return self.manifest.get("version")

    # ------------------------------------------------------------------ files

    def path(self, rel: str) -> Path:
        """The path of ``rel`` in the folder, or a ``UserError`` saying how to get it."""
        p = self.root / rel
        if not p.exists():
            how = (
                " (a partial download: load again with it in include=)"
                if rel in self.manifest.get("files", {})
                else ""
            )
            raise UserError(f"{self.root}: no {rel}{how}")
        return p

    def _parquet(self, rel: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(self.path(rel))

    @cached_property
    def nodes(self) -> Any:
        """pyarrow.Table of node_attributes/*.parquet in shard order (``.to_pandas()`` works)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.path("node_attributes")
        shards = sorted(
            folder.glob("node_attributes_*.parquet"),
            key=lambda p: int(re.sub(r"\D", "", p.stem) or 0),
        )
        if not shards:
            raise UserError(f"{folder}: no node_attributes_*.parquet")
        table = pa.concat_tables([pq.read_table(p) for p in shards])
        if "node_id" in table.column_names:
            ids = table["node_id"].to_numpy()
            if not np.array_equal(ids, np.arange(len(ids))):
                table = table.take(np.argsort(ids, kind="stable"))
        return table

    @cached_property
    def edges(self) -> Any:
        """pyarrow.Table: src, dst (node ids, one row per undirected edge), weight, relation..."""
        return self._parquet("edges.parquet")

    @cached_property
    def splits(self) -> Any:
        """pyarrow.Table: node_id, asin, split ("train" / "val" / "test")."""
        return self._parquet("splits.parquet")

    @cached_property
    def edge_splits(self) -> Any:
        """pyarrow.Table of the link-prediction splits: src, dst, split, label."""
        return self._parquet("edge_splits.parquet")

    @cached_property
    def classes(self) -> dict[int, str]:
        """Class index -> class name (node_categories.json)."""
        raw = json.loads(self.path("node_categories.json").read_text())
        return {int(k): str(v) for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))}

    @property
    def class_names(self) -> list[str]:
        names = self.classes
        return [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]

    @cached_property
    def relations(self) -> dict | None:
        """The RCML relation texts and cluster statistics (relations.json), if published."""
        p = self.root / "relations.json"
        return json.loads(p.read_text()) if p.exists() else None

    # ------------------------------------------------------------------ arrays

    @property
    def num_nodes(self) -> int:
        return self.nodes.num_rows

    @cached_property
    def labels(self) -> np.ndarray:
        return self.nodes["class"].to_numpy().astype(np.int64)

    def edge_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(src, dst, weight)`` of the undirected edges: int64, int64, float32."""
        e = self.edges
        return (
            e["src"].to_numpy().astype(np.int64),
            e["dst"].to_numpy().astype(np.int64),
            e["weight"].to_numpy().astype(np.float32),
        )

    def directed_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both directions, as in dgl_graph.dgl: every (src, dst), then every (dst, src)."""
        src, dst, w = self.edge_arrays()
        return np.concatenate([src, dst]), np.concatenate([dst, src]), np.concatenate([w, w])

    @cached_property
    def masks(self) -> dict[str, np.ndarray]:
        """``{"train", "val", "test"}`` -> bool [N] node masks from splits.parquet."""
        s = self.splits
        ids = s["node_id"].to_numpy()
        split = np.asarray(s["split"].to_pylist(), dtype=object)
        out = {}
        for name in SPLITS:
            m = np.zeros(self.num_nodes, dtype=bool)
            m[ids[split == name]] = True
            out[name] = m
        return out

    @property
    def embedding_names(self) -> list[str]:
        folder = self.root / "embeddings"
        names = {p.name.split("_embeds.")[0] for p in folder.glob("*_embeds.*")}
        return sorted(names)

    def embeddings(self, name: str = "combined", tensor: bool = False, mmap: bool = True) -> Any:
        """The ``name`` embeddings (image, title, description, combined) as float32 [N, d].

        numpy, memory-mapped from ``embeddings/<name>_embeds.npy`` (read-only; ``mmap=False``
        loads a copy); ``tensor=True`` gives a torch tensor. Without the .npy, the .pt is read
        with ``torch.load(weights_only=True)``.
        """
        name = name.removesuffix("_embeds")
        npy = self.root / "embeddings" / f"{name}_embeds.npy"
        if npy.exists():
            arr = np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False)
            if not tensor:
                return arr
            import torch

            return torch.from_numpy(np.array(arr, dtype=np.float32))
        pt = self.path(f"embeddings/{name}_embeds.pt")
        import torch

        t = torch.load(pt, map_location="cpu", weights_only=True)
        return t if tensor else t.numpy()

    @property
    def modalities(self) -> list[str]:
        """["image", "text"], or ["text"] for a text-only folder (no images.tar and no image
        embeddings; e.g. Amazon-M2 without an image source). Older manifests: both."""
        return list(self.manifest.get("modalities") or ["image", "text"])

    @cached_property
    def sessions(self) -> Any:
        """sessions.parquet (Amazon-M2 builds: session_id, locale, items and next_item as
        node ids) as an arrow table; None when the folder has none."""
        if not (self.root / "sessions.parquet").is_file():
            return None
        return self._parquet("sessions.parquet")

    # ------------------------------------------------------------------ images

    def image_bytes(self, asin: str) -> bytes:
        """The JPEG bytes of product ``asin``: from ``images/`` or from inside images.tar."""
        if "image" not in self.modalities:
            raise UserError(
                f"{self.root}: a text-only category has no images "
                f"({(self.manifest.get('without') or {}).get('images', 'manifest modalities')})"
            )
        name = f"images/{asin}.jpg"
        p = self.root / name
        if "/" not in asin and p.is_file():
            return p.read_bytes()
        index = self._images_index()
        if name not in index:
            raise KeyError(f"no image for {asin!r} in {self.root}")
        offset, size = index[name]
        with open(self.path(IMAGES_TAR), "rb") as f:
            f.seek(offset)
            return f.read(size)

    def _images_index(self) -> dict[str, tuple[int, int]]:
        """Member name -> (data offset, size) of images.tar, read once (headers only)."""
        if self._tar_index is None:
            with tarfile.open(self.path(IMAGES_TAR), "r:") as tar:
                self._tar_index = {
                    m.name: (m.offset_data, m.size) for m in tar if m.isfile() and not m.issparse()
                }
        return self._tar_index

    def image(self, asin: str) -> Any:
        """A PIL image of product ``asin`` (opened lazily: decoded when its pixels are used)."""
        try:
            from PIL import Image
        except ImportError as e:
            raise UserError("images need Pillow: pip install 'acmmg-data[images]'") from e
        return Image.open(io.BytesIO(self.image_bytes(asin)))

    # ------------------------------------------------------------------ checks and adapters

    def verify(self) -> None:
        """Re-hash every file the manifest lists that is present; ``UserError`` on a mismatch."""
        from acmmg.download import sha256_file

        for rel, meta in self.manifest.get("files", {}).items():
            p = self.root / rel
            if p.exists() and (
                p.stat().st_size != meta["size"] or sha256_file(p) != meta["sha256"]
            ):
                raise UserError(f"{p}: differs from the manifest (sha256 {meta['sha256']})")

    def to_pyg(self, embedding: str | None = "combined") -> Any:
        """A ``torch_geometric.data.Data``; see ``acmmg.adapters.to_pyg``."""
        from acmmg.adapters import to_pyg

        return to_pyg(self, embedding)

    def to_dgl(self, embedding: str | None = "combined") -> Any:
        """A ``dgl.DGLGraph``; see ``acmmg.adapters.to_dgl``."""
        from acmmg.adapters import to_dgl

        return to_dgl(self, embedding)

    def to_hf(self, image: bool = False) -> Any:
        """A ``datasets.DatasetDict`` (train / validation / test); see ``acmmg.adapters.to_hf``."""
        from acmmg.adapters import to_hf

        return to_hf(self, image)
