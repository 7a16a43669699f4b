"""The worker's core: typed, batch-at-a-time stages with no Kafka in them."""
