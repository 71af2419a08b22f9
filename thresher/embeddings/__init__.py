"""Sentence embeddings and what they enable: semantic dedup, diversity selection, judge distillation.

    models      locate embedding models (packaged all-MiniLM-L6-v2, directories, HF cache ids);
                ONNX (onnxruntime + tokenizers, no torch) and sentence-transformers encoders
    scorer      EmbeddingScorer: scores/embed@1/ sidecar, one L2-normalised float32 vector per row
    apply       embedding sidecar readers
    kmeans      seeded spherical k-means (numpy)
    semdedup    SemDeDup: k-means, within-cluster pairs >= threshold, components, survivors
    index       the kept-set index of diversity selection (faiss: exact, or IVF on disk)
    diversity   DEITA's score-first similarity-threshold rule, and k-center
    distill     ridge head on frozen embeddings that predicts a judge score; DistilledScorer
    config      pydantic settings of all of the above (EmbeddingsConfig: the recipe section)
    cli         `thresher embeddings ...`

Nothing here imports torch, onnxruntime or faiss at import time; models load on first use.
"""
