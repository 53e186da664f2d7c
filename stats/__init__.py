"""tracejudge.stats"""
