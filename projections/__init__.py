"""Folds from events to timeline entries, the Redis read model, and the runner."""
