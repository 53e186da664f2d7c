"""tracejudge.processor"""
