"""What central's feature packages share, one level below all of them.

Feature packages (``cameras``, ``events``, ``sessions``, ``lots`` ...) may import ``core``;
``core`` imports none of them (tests/unit/test_import_graph.py), so the features form a tree:

* ``identity``  ``CameraIdentity``, who is calling with a camera key.
* ``lots``      the ``Lot`` table and ``ensure_lot``: every feature names a lot.
* ``events``    the ``PlateEvent`` / ``Snapshot`` tables: the event record that ingest writes
                and cameras (reconciliation), sessions (snapshots), reports and privacy read.
* ``plates``    ``PlateText``, a plate as an operator types it (sessions, lists, privacy).
* ``hub``       ``LiveHub``, this process's live WebSocket fan-out.
* ``waiters``   ``CommandWaiters``, lane command polls woken on commit.
* ``state``     ``AppState``, what one running instance holds.
"""
