"""tracejudge.stats: per-version quality statistics and alerts (not built yet; see the open issues)."""
