"""Evaluate generated proteins (spec §6): one module per metric, one rule per metric table.

- :mod:`~dplm2.evaluate.folding` — pluggable folding backends (ESMFold, DPLM-2 folding mode).
- :mod:`~dplm2.evaluate.refold` — fold each sample's sequence once, cached per task.
- :mod:`~dplm2.evaluate.self_consistency` — scTM, scRMSD, pLDDT, designability.
- :mod:`~dplm2.evaluate.fold_accuracy` — folding task: RMSD / TM vs the true structure.
- :mod:`~dplm2.evaluate.recovery` — inverse folding: amino-acid recovery.
- :mod:`~dplm2.evaluate.diversity` — inner-TM per length, clusters of designable samples.
- :mod:`~dplm2.evaluate.novelty` — max TM-score to the training structures.
- :mod:`~dplm2.evaluate.motif` — motif scaffolding success and problems solved.
- :mod:`~dplm2.evaluate.summary` / :mod:`~dplm2.evaluate.plots` — tables and report figures.

Pairwise structure comparison itself lives in :mod:`dplm2.structure.compare`.
"""
