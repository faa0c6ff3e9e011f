# download stage rules.
DOWNLOAD_TARGETS = []
