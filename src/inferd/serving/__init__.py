"""The model manager: load, warm, serve, hot swap and evict model versions."""
