"""Named run configurations: which domains and tasks an experiment uses, with what model and weights.

Configs are where an experiment names domains; the framework code around them reads
what a domain is from the registry (`gl.domains`).
"""
