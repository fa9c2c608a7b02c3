"""Job batches: creating them, running their tasks, tracking them to the end."""
