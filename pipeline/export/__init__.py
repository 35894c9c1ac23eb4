"""Exports of published category folders into other datasets' layouts (SQID)."""
