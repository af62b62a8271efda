"""
Helpers for users' own tests of code that drives relocator.

- `MemoryStore` is a registry in memory (the `Store` protocol with the `BlobMounter`
  and `Referrers` capabilities), with an operation log (`Operation`) and fault options
  (`Faults`).

It depends only on the pure data model in `relocator.oci` and the error hierarchy, so it
can judge the engine, stores and CLI without depending on them. Production code never
imports this package.
"""

from __future__ import annotations

from relocator.testing.memory import Faults, MemoryStore, Operation

__all__ = ("Faults", "MemoryStore", "Operation")
