"""Real-time customer-effort, satisfaction and loyalty scores for contact centers, on Kafka."""
