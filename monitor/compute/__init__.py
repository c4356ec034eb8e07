"""From window counts to figures: drift statistics per feature, drift decisions
(thresholds, ``k`` consecutive windows, dataset drift) and model performance on labels."""
