"""What a stage may use while it runs: memory, spill space, threads, progress output.

None of these change a stage's result, so none is part of a stage's cache key; they are
kept apart from the stage parameters for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.params import param


@dataclass(frozen=True)
class Resources:
    memory_limit: str | None = param(
        None,
        "DuckDB memory_limit, e.g. 4GB (default $ACMMG_DUCKDB_MEMORY, else 2GB)",
        metavar="SIZE",
    )
    temp_directory: str | None = param(
        None, "DuckDB spill directory (default $ACMMG_DUCKDB_TEMP, else WORK/.duckdb_tmp)"
    )
    threads: int | None = param(None, "DuckDB threads (default $ACMMG_DUCKDB_THREADS, else all)")
    progress: bool = param(False, "progress bars on the terminal", cli=False)
