# generate stage rules.
GENERATE_TARGETS = []
