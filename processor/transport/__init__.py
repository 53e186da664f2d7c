"""What the servers of receivers and extensions share: HTTP sites and endpoints, TLS, client authentication
settings, and the one mapping of errors to gRPC and HTTP statuses."""
