"""Delivery of notifications: the outbox and its dispatcher, the retry policy, the P1 digest, the P2 daily summary
and the Alertmanager refresh."""
