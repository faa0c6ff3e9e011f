# evaluate stage rules.
EVALUATE_TARGETS = []
