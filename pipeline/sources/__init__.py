"""Input sources: fetching dumps (local, http(s), fsspec) and detecting their format."""
