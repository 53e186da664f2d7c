"""tracejudge.judge"""
