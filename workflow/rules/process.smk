# process stage rules.
PROCESS_TARGETS = []
