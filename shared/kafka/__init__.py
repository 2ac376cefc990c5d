"""Kafka plumbing every service and tool shares (clients, topics, readiness); no business logic."""
