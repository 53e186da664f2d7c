"""The service: reads the config (with cross-references and stage order checked), builds components from the
factory map, runs them as pipelines, and is the Host they find each other through. Names no concrete component."""
