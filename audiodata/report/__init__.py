"""Human-facing renderings of the lint report (the JSON report stays the stable interface)."""
