# tokenizer stage rules.
TOKENIZER_TARGETS = []
