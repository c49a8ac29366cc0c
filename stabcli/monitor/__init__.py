"""A live stability monitor for any training loop (see :func:`watch`)."""
