"""The standard tasks of a published category, builder side: the link-prediction edge splits
(``edge_splits``) and the zero-training baselines the card shows (``baselines``). Their
evaluator is ``acmmg.evaluator`` (the light package researchers import)."""
