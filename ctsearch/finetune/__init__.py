"""Fine-tuning on an index: ClassFine (linear head on latents) and VocabFine (prompt pairs)."""
