"""From window figures to delivered alerts: state transitions (drift detected / resolved,
performance degraded), the durable outbox, Standard Webhooks signing, the registry audit
trail and the forwarding of the registry's rollout and trainer events."""
