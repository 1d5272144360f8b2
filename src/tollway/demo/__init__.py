"""``tollway demo``: the whole platform on one machine, with simulated providers and no keys."""
