"""Scorers: each maps Arrow batches of documents to a versioned sidecar table keyed by doc_id."""
