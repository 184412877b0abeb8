"""Mail as bytes: the robust parser of inbound mail and the builder of outgoing MIME (no database)."""
