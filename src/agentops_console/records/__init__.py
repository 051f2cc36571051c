"""The records store: every recorded session (`agentops.record/1`) in a local SQLite file.

- `store.open_store(path, writer=...)`: open (or create) a records DB; a writer holds the
  single-writer lock (`lock.WriterLock`) for as long as it is open.
- `RecordsStore.write(records)`: idempotent upserts, one transaction per batch.
- `RecordsStore.query(filters)` / `get(session_id, agent=)`: reading back.
- `retention.prune(store, keep_days=, max_mb=)`: whole sessions, oldest first, in batches.
- gaps and stream positions, for the watcher that fills the store.
"""
