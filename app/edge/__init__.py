"""The edge agent: frames -> plate reads -> one event -> durable outbox -> central.

Runs on each lane's Raspberry Pi. Imports ``app.contract`` and never ``app.central``; see
docs/edge.md for the moving parts and how they are wired in ``agent.py``.
"""

__version__ = "0.1.0"
