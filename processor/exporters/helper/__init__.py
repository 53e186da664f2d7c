"""What every network exporter sits behind, as in the Collector's exporterhelper: the bounded sending queue (in
memory or on disk), delivery with retries, and the suppression of self-tracing."""
