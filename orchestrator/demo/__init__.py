"""A self-contained demonstration: real loopback services, a real crash, a real verified recovery."""
