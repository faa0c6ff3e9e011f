# lm stage rules.
LM_TARGETS = []
