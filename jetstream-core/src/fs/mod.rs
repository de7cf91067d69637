//! Files: reading sources, writing and verifying destinations, path safety, resume journal.
