"""Declarative extraction pipelines: a YAML spec per source under include/pipelines, turned
into DAGs by one factory (dags/extraction_pipelines.py)."""
