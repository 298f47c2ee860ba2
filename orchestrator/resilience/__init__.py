"""Circuit breaker, backoff with jitter, retry budget: pure, clock-injected, no I/O."""
