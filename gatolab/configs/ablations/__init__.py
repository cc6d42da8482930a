"""Ready ablations: each file's `get_spec()` returns a `gl.experiments.ExperimentSpec` on a named config.

    gatolab ablate --list
    gatolab ablate prompt_at_eval --out runs/abl budget_minutes=5 --seeds 3
"""
