"""Recovery strategy plugins: the contract, placeholder templating, and the entry-point registry."""
