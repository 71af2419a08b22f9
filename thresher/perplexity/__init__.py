"""The perplexity stage: CCNet-style KenLM and causal-LM perplexity scorers, run-relative bands,
and training of the reference models they score with (KenLM n-grams, small GPT-2 proxies).

Imports are lazy: `import thresher.perplexity` loads neither torch nor KenLM."""
