"""`python -m gatolab.model`: the presets' parameter counts next to the paper's (Table 5)."""

from gatolab.model.count import format_param_table

print(format_param_table())
