"""Generated data sets: a seeded pseudo-English corpus and a teacher-labelled classification set.

The corpus (``synthetic-text``, used by the ``tiny-char`` preset) is char-level text built so
that Adam's growth where γ² > β shows within a short probe (docs/theory.md §3, §9): a
Zipf-distributed lexicon of pronounceable lower-case words over the 20 most common English
letters, chained by a sparse word-to-word Markov table, with commas, full stops and line
breaks; and four symbols (``$ % # *``) that first occur in the last 5% of the text, as a
book's closing tables or index would introduce them, so that they never occur in the
training split.

Why this shape. A symbol the model never sees in training only ever gets the gradient
p_v · h of its row of the tied embedding (the output head), which fades geometrically as
the row is pushed down; once it fades faster than sqrt(β)^n, the update of a point with
γ² > β grows at the exact rate ρ_n (docs/theory.md (3.15)). It keeps fading only if no
position of any batch lifts that logit again. A symbol that is merely rare in training
does: its own row, pushed down most of the time, comes to resemble the unseen rows, and a
position whose hidden state points at it (a rare letter, digit, capital or mark about to
follow) lifts every unseen logit, and the growth stops. (With digits, rare marks, capitals
and all 26 letters, the growth of (0.95993, 0.9844) ended at n ≈ 350.) So every symbol of
the training split is frequent (each at least 0.4% of it), and the unseen ones are unseen.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# the 20 most common English letters, most common first; v k j x q z (each below 1% of
# English letters) are left out: rare in training is what stops the growth (docstring)
_LETTERS = "etaoinshrdlcumwfgypb"
_LETTER_FREQ = np.array(
    [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
     2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5]
)  # fmt: skip
_LETTER_FLOOR = 2.0  # no letter below 2% of letters (p, b raised), so none is rare in training
_VOWELS = set("aeiou")
_LATE_MARKS = ["$", "%", "#", "*"]  # first used in the last 5% of the text (test split only)
_LATE_FROM = 0.95  # where the late marks start: after any train_fraction up to 0.95


def _word(rng: np.random.Generator, p_letters: np.ndarray) -> str:
    length = int(rng.integers(1, 9))
    letters = rng.choice(len(_LETTERS), size=length, p=p_letters)
    word = "".join(_LETTERS[i] for i in letters)
    if not any(c in _VOWELS for c in word):  # keep words pronounceable-ish
        word = word[: length // 2] + "aeiou"[int(rng.integers(5))] + word[length // 2 :]
    return word


@lru_cache(maxsize=4)
def synthetic_text(seed: int, n_chars: int) -> str:
    """Deterministic pseudo-English text of at least ``n_chars`` characters.

    Lower-case words over 20 letters, spaces, commas, full stops and line breaks; ``$ % # *``
    only from ``_LATE_FROM`` (95%) of the text on (module docstring: why).
    """
    rng = np.random.default_rng(seed)
    freq = np.maximum(_LETTER_FREQ, _LETTER_FLOOR)
    p_letters = freq / freq.sum()
    n_words = 600
    lexicon = list(dict.fromkeys(_word(rng, p_letters) for _ in range(n_words * 2)))[:n_words]
    n_words = len(lexicon)
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
            roll = rng.random()
            if roll < 0.012 and total > _LATE_FROM * n_chars:  # late symbols, as an index or table
                text = _LATE_MARKS[int(rng.integers(len(_LATE_MARKS)))] + text
            elif roll < 0.08 and i < sentence_len - 1:
                text += ","
            words.append(text)
        sentence = " ".join(words) + "."
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
