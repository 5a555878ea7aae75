"""The domain, framework-free: policy, eligibility, grammar, lifecycle, chains, sweeps, queries."""
