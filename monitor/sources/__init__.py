"""Where events come from: files for replay, Kafka for the daemon."""
