"""Dynamic batching: the per-model batcher (``batcher``) and how each model batches (``policy``)."""
