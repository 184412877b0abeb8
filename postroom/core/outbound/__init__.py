"""Outbound: composing replies, the outbox that sends them, connections, and failure classification."""
