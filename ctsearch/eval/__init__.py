"""Every metric in one place: retrieval (Recall@K, MAP@K), detection (AUROC, F1), labels, t-SNE."""
