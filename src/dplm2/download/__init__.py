"""Download stage: PDB entries (wwPDB) and AlphaFold DB models, robustly, into the server layout.

Modules: :mod:`.config` (typed settings), :mod:`.ids` (identifier validation, ID lists, RCSB
search/holdings, sharding), :mod:`.fetch` (one robust transfer), :mod:`.sources` (server
layouts), :mod:`.batch` (parallel fetch of many entries), :mod:`.tarball` (the SwissProt bulk
archive, extracted safely), :mod:`.manifest` (the Parquet manifest), :mod:`.cli` (``dplm2
download …``).
"""
