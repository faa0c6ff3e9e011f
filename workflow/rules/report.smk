# report stage rules.
REPORT_TARGETS = []
