"""asv benchmark suite of fastnorm; see asv.conf.json and the README."""
