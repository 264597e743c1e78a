"""Central service: ingest, parking sessions, cameras, operators, live feed."""

__version__ = "0.1.0"
