"""Reference text, corrupted text and trained models for the perplexity tests.

Reference text is English Wikipedia: `wikipedia_sample.txt` (30 articles, one per line) and
WikiText-2's validation split (60 other articles, detokenised). The models train on the sample's
even-numbered articles plus WikiText-2 (1.5 MB); paragraphs of the sample's odd-numbered articles
are the clean evaluation text, so training and evaluation never share an article (no 8-gram of an
evaluation article occurs in WikiText-2). The sample lost its paragraph breaks
("...socialism.Humans lived..."), so paragraphs are cut where a sentence end runs into a capital.

Corrupted text, each derived from a clean paragraph with a seeded RNG (so its length matches):
- `shuffled`: the paragraph's own words in random order (same unigrams, broken syntax);
- `random_chars`: every letter replaced by a random lower-case letter (word shapes kept);
- `boilerplate`: navigation menus, cookie banners and footers of the paragraph's word count.

Trained models are cached per test session (process), so test modules share one training run.
"""

from __future__ import annotations

import functools
import random
import re
import string
from pathlib import Path

_PARAGRAPH_BREAK = re.compile(r"(?<=[a-z0-9][.!?])(?=[A-Z])|(?<=[.!?][\"')])(?=[A-Z])")

MENU_ITEMS = [
    "Home", "About Us", "Contact", "Blog", "Shop", "Cart (0)", "Login", "Sign up", "Register",
    "My Account", "Privacy Policy", "Terms of Use", "Cookie Settings", "FAQ", "Help", "Careers",
    "Press", "Sitemap", "Newsletter", "Subscribe", "Follow us", "Facebook", "Twitter", "Instagram",
    "Pinterest", "YouTube", "Share", "Tweet", "Pin it", "Email", "Print", "Skip to content", "Menu",
    "Search", "Previous", "Next", "Read more", "Load more", "Back to top", "Accept all cookies",
    "Reject", "Manage preferences", "All rights reserved", "© 2023", "Powered by WordPress",
    "Categories", "Tags", "Archives", "Recent Posts", "Popular", "Trending", "Deals", "Gift Cards",
]


def wiki_articles(sample_data: Path) -> list[str]:
    lines = (sample_data / "wikipedia_sample.txt").read_text(encoding="utf-8").split("\n")
    return [line for line in lines if line.strip()]


def wikitext_documents(sample_data: Path) -> list[str]:
    """WikiText-2 validation paragraphs, detokenised (" @-@ " → "-", no space before punctuation);
    headings dropped and `<unk>` (its rare-word placeholder) removed."""
    documents = []
    for line in (sample_data / "wikitext2_valid.txt").read_text(encoding="utf-8").split("\n"):
        line = line.strip()
        if not line or line.startswith("="):
            continue
        line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".").replace("<unk>", "")
        line = re.sub(r" ([,.;:!?)\]'%])", r"\1", line).replace("( ", "(").replace(" n't", "n't")
        documents.append(" ".join(line.split()))
    return documents


def training_articles(sample_data: Path) -> list[str]:
    return wiki_articles(sample_data)[0::2] + wikitext_documents(sample_data)


def paragraphs(article: str, min_words: int = 40, max_words: int = 160) -> list[str]:
    found = []
    for paragraph in _PARAGRAPH_BREAK.split(article):
        words = paragraph.split()
        if len(words) >= min_words:
            found.append(" ".join(words[:max_words]))
    return found


def evaluation_paragraphs(sample_data: Path, count: int = 120, seed: int = 0) -> list[str]:
    pool = [p for article in wiki_articles(sample_data)[1::2] for p in paragraphs(article)]
    return random.Random(seed).sample(pool, min(count, len(pool)))


def shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


def random_chars(text: str, rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) if c.isalpha() else c for c in text)


def boilerplate(n_words: int, rng: random.Random) -> str:
    lines, words = [], 0
    while words < n_words:
        line = " | ".join(rng.choice(MENU_ITEMS) for _ in range(rng.randint(3, 8)))
        lines.append(line)
        words += len(line.split())
    return "\n".join(lines)


CORRUPTIONS = ("shuffled", "random_chars", "boilerplate")


def corrupted(clean: list[str], seed: int = 0) -> dict[str, list[str]]:
    rng = random.Random(seed)
    return {
        "shuffled": [shuffled(t, rng) for t in clean],
        "random_chars": [random_chars(t, rng) for t in clean],
        "boilerplate": [boilerplate(len(t.split()), rng) for t in clean],
    }


def auc(clean_scores: list[float], corrupted_scores: list[float]) -> float:
    """P(score of a corrupted text > score of a clean one), ties counted half (Mann-Whitney)."""
    wins = 0.0
    for c in corrupted_scores:
        for k in clean_scores:
            wins += 1.0 if c > k else 0.5 if c == k else 0.0
    return wins / (len(clean_scores) * len(corrupted_scores))


# -- models trained once per test session ----------------------------------------------------------

# ~20-35 s on one busy core; shuffled-word AUC ~0.83 (250 steps: 0.69, 96 wide: 0.87 in twice the time).
TEST_PROXY = dict(steps=400, vocab_size=1024, n_layer=2, n_head=4, n_embd=64, block_size=64,
                  batch_size=16, learning_rate=5e-3, seed=0, threads=1)


@functools.cache
def trained_proxy(sample_data: Path, root: Path) -> Path:
    from thresher.perplexity.train_proxy import train_proxy

    return train_proxy(training_articles(sample_data), root / "proxy", **TEST_PROXY)


@functools.cache
def trained_kenlm(sample_data: Path, root: Path, backend: str = "auto", order: int = 5) -> Path:
    from thresher.perplexity.train_kenlm import train_kenlm

    return train_kenlm(training_articles(sample_data), root / f"kenlm-{backend}-{order}", order=order,
                       backend=backend)


@functools.cache
def converted_smollm2(cache_root: Path) -> tuple[Path, float]:
    """SmolLM2-135M-Instruct's GGUF converted once per session into `cache_root` (and seconds taken)."""
    import time

    from thresher.models.resolve import ModelResolveError, convert_gguf, locate_model

    try:
        source = locate_model("smollm2-135m-instruct")
    except ModelResolveError as exc:
        import pytest

        pytest.skip(str(exc))
    started = time.perf_counter()
    path = convert_gguf(source.path, cache_root / "models")
    return path, time.perf_counter() - started
