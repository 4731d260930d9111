"""The audio stage: resolve a reference, decode, resample once, encode, hash."""
