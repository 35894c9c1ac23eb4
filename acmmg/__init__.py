"""acmmg: load published ACMMG co-purchase graph categories (light: numpy + pyarrow).

    from acmmg import load_category
    cat = load_category("hf://datasets/OWNER/NAME/electronics")   # or a path / URL
    cat.nodes.to_pandas(); cat.embeddings("combined"); cat.image(asin)
    data = cat.to_pyg()            # torch_geometric.data.Data (optional dependency)
    ds = cat.to_hf(image=True)     # datasets.DatasetDict train / validation / test

Importing this package imports neither torch, Prefect, Dask, open_clip nor DuckDB; torch,
torch_geometric, dgl, datasets and PIL are imported only by the calls that need them.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name -> module, imported on first use (PEP 562) so `import acmmg` stays light.
_LAZY = {
    "load_category": "acmmg.category",
    "Category": "acmmg.category",
    "download_category": "acmmg.download",
    "Evaluator": "acmmg.evaluator",
    "UserError": "acmmg.errors",
    "DownloadError": "acmmg.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'acmmg' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
