"""tracejudge.stats: per-version quality statistics and alerts. Built in later issues."""
