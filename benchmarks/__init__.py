"""asv benchmarks (see asv.conf.json): the hot-path cases and the end-to-end figures over history."""
