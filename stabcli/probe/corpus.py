"""Generated data sets: a seeded pseudo-English corpus and a teacher-labelled classification set.

The corpus (``synthetic-text``, used by the ``tiny-char`` preset) is built to behave like
natural text at character level: a Zipf-distributed lexicon of pronounceable
words chained by a sparse word-to-word Markov table, capitalised sentences and proper names,
commas and full stops, and a tail of rare symbols (digits, ``? ! ; : ' & -``, rare
capitals), and a few symbols that first occur in the last 5% of the text, as a book's
closing tables or index would introduce them, so that they never occur in the training
split and their rows of the tied embedding only ever see fading gradients. The rare
symbols matter for the stability probes: a token the model has learnt
to rule out gets gradients that fade geometrically, which is exactly where Adam's
max-update grows when γ² > β (docs/theory.md §3).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
# rough English letter frequencies, most common first (so q, z, x, j are rare)
_LETTER_FREQ = np.array(
    [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
     2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07]
)  # fmt: skip
_VOWELS = set("aeiou")
_RARE_MARKS = ["?", "!", ";", ":", "'", "&", "-"]
_LATE_MARKS = ["$", "%", "#", "*"]  # first used in the last 5% of the text (test split only)


def _word(rng: np.random.Generator, p_letters: np.ndarray) -> str:
    length = int(rng.integers(1, 9))
    letters = rng.choice(len(_LETTERS), size=length, p=p_letters)
    word = "".join(_LETTERS[i] for i in letters)
    if not any(c in _VOWELS for c in word):  # keep words pronounceable-ish
        word = word[: length // 2] + "aeiou"[int(rng.integers(5))] + word[length // 2 :]
    return word


@lru_cache(maxsize=4)
def synthetic_text(seed: int, n_chars: int) -> str:
    """Deterministic pseudo-English text of at least ``n_chars`` characters."""
    rng = np.random.default_rng(seed)
    p_letters = _LETTER_FREQ / _LETTER_FREQ.sum()
    n_words = 600
    lexicon = list(dict.fromkeys(_word(rng, p_letters) for _ in range(n_words * 2)))[:n_words]
    n_words = len(lexicon)
    proper = rng.random(n_words) < 0.04  # names: always capitalised, rare capitals
    zipf = 1.0 / np.arange(1, n_words + 1) ** 1.1
    zipf /= zipf.sum()
    successors = rng.choice(n_words, size=(n_words, 6), p=zipf)  # sparse Markov table

    pieces: list[str] = []
    total = 0
    word = int(rng.choice(n_words, p=zipf))
    while total < n_chars:
        sentence_len = int(rng.integers(3, 13))
        words = []
        for i in range(sentence_len):
            nxt = successors[word, int(rng.integers(6))] if rng.random() < 0.7 else None
            word = int(nxt) if nxt is not None else int(rng.choice(n_words, p=zipf))
            text = lexicon[word]
            if proper[word] or i == 0:
                text = text.capitalize()
            roll = rng.random()
            if roll < 0.004:  # rare: numbers
                text = str(int(rng.integers(1, 400)))
            elif roll < 0.012 and total > 0.95 * n_chars:  # late symbols, as an index or table
                text = _LATE_MARKS[int(rng.integers(len(_LATE_MARKS)))] + text
            elif roll < 0.01:  # rare: a mark inside the sentence
                text += _RARE_MARKS[int(rng.integers(2, len(_RARE_MARKS)))]
            elif roll < 0.08 and i < sentence_len - 1:
                text += ","
            words.append(text)
        end = rng.random()
        stop = "." if end < 0.9 else ("?" if end < 0.96 else "!")
        sentence = " ".join(words) + stop
        sep = "\n" if rng.random() < 0.25 else " "
        pieces.append(sentence + sep)
        total += len(sentence) + 1
    return "".join(pieces)


@lru_cache(maxsize=4)
def synthetic_classes(
    seed: int, n_samples: int, n_features: int, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs labelled by a fixed random two-layer teacher network.

    Returns ``x`` of shape (N, F) float64 and ``y`` of shape (N,) int64.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_samples, n_features))  # (N, F)
    w1 = rng.standard_normal((n_features, 4 * n_features)) / np.sqrt(n_features)
    w2 = rng.standard_normal((4 * n_features, n_classes)) / np.sqrt(4 * n_features)
    logits = np.tanh(x @ w1) @ w2  # (N, K)
    y = logits.argmax(axis=1).astype(np.int64)
    return x, y
