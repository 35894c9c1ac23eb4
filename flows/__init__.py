"""Prefect flows: the build-category flow, its deployments and schedules."""
