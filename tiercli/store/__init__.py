"""What tiercli keeps on disk: its home, saved runs, embeddings."""
