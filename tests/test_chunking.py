"""Long texts as overlapping windows: where the windows go, exact token and character spans, and what the vectors
equal (the first window is the truncated text; a text that fits is one window)."""

import numpy as np
import pytest

from rosberta_onnx import Encoder, InputTooLongError, PromptWarning
from rosberta_onnx.chunking import check_window, windows

LONG_RU = "Первое предложение о погоде. " * 90
LONG_EN = "The quick brown fox jumps over the lazy dog; " * 60
EMOJI = "Семья 👨‍👩‍👧‍👦 и флаг 🏳️‍🌈 " * 120
SPACES = "  много   пробелов \t\t и\n\n\nстрок  " * 60
NUL = "a\x00b\x01c " * 300


def _document() -> str:
    """A long text whose windows say different things: real RU/EN sentences one after another."""
    from rosberta_export.corpus import sts_pairs

    return " ".join(p.sentence1 for lang in ("ru", "en") for p in sts_pairs(lang, "dev")[:50])


DOC = _document()


@pytest.fixture(scope="module")
def enc(runtime_artifact):
    return Encoder.load(runtime_artifact, variant="fp32")


def cos(a, b):
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize(
    ("n", "window", "overlap"),
    [(10, 4, 1), (11, 4, 1), (10, 4, 2), (4, 4, 0), (3, 4, 1), (0, 4, 1), (1000, 510, 63), (1021, 510, 0)],
)
def test_windows_start_at_zero_overlap_exactly_end_full_and_cover(n, window, overlap):
    spans = windows(n, window, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(0 < b - a <= window for a, b in spans) or n == 0
    covered = set()
    for a, b in spans:
        covered |= set(range(a, b))
    assert covered == set(range(n))
    shared = [prev[1] - cur[0] for prev, cur in zip(spans, spans[1:])]
    assert all(s == overlap for s in shared[:-1]) and (not shared or shared[-1] >= overlap)
    if n > window:
        assert spans[-1][1] - spans[-1][0] == window  # the last is moved back so it is full


@pytest.mark.parametrize("seed", range(40))
def test_word_windows_start_at_word_starts_cover_and_never_exceed_the_window(seed):
    rng = np.random.default_rng(seed)
    n, window = int(rng.integers(0, 300)), int(rng.integers(1, 40))
    overlap = int(rng.integers(0, window))
    starts = list(rng.random(n) < rng.choice([0.05, 0.3, 0.9]))
    if n:
        starts[0] = True
    spans = windows(n, window, overlap, starts)
    assert spans[0][0] == 0 and spans[-1][1] == n
    covered = set()
    for a, b in spans:
        assert 0 < b - a <= window or n == 0
        covered |= set(range(a, b))
    assert covered == set(range(n))
    for (a, b), (c, d) in zip(spans, spans[1:]):
        assert a < c <= b < d  # in order, no gap, each one further
        inside = [i for i in range(a + 1, b + 1) if starts[i]]
        # a window starts at a word start whenever the window before holds one to start from, and the one nearest
        # ``overlap`` tokens before the end (the last window: the earliest that leaves it full)
        if inside and (c, d) != spans[-1]:
            assert starts[c] and abs(c - (b - overlap)) == min(abs(i - (b - overlap)) for i in inside)
        elif inside:
            assert starts[c] and not any(starts[i] for i in range(max(n - window, 0), c))
        else:
            assert c == b  # one word longer than the window: cut where the last one ended
    assert windows(n, window, overlap, [True] * n) == windows(n, window, overlap)


def test_word_rule_reads_each_tokenizer_family():
    from rosberta_onnx.chunking import WordRule, word_starts

    wordpiece = WordRule.from_model({"type": "WordPiece", "continuing_subword_prefix": "##"})
    assert word_starts(["the", "uk", "##ule", "##le", ".", "漢"], wordpiece) == [True, True, False, False, True, True]
    bpe = WordRule.from_model({"type": "BPE", "continuing_subword_prefix": None})
    assert word_starts(["The", "\u0120uk", "ule", "le", ".", "\u010a", "\u0120", "\u00e6"], bpe) == [
        True, True, False, False, False, True, True, False,
    ]  # fmt: skip
    spm = WordRule.from_model({"type": "Unigram"})
    assert word_starts(["\u2581Hel", "lo", "\u2581world"], spm) == [True, False, True]
    assert word_starts(["a", "b"], WordRule.from_model({"type": "WordLevel"})) == [True, True]


def _full_ids(enc, text, task):
    """Every id of the prepared text, specials included, straight from the artifact's tokenizer.json."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(enc.folder / enc.manifest.tokenizer_file))
    tok.no_truncation()
    return tok.encode(enc.prepare([text], task=task)[0]).ids


@pytest.mark.parametrize("task", [None, "search_query"])
@pytest.mark.parametrize(
    "text", [LONG_RU, LONG_EN, EMOJI, SPACES, NUL, DOC], ids=["ru", "en", "emoji", "spaces", "nul", "doc"]
)
def test_spans_are_exact_and_cover_every_token_and_character(enc, text, task):
    window, overlap = 100, 12
    with pytest.warns(PromptWarning) if task and text.startswith("search") else _nothing():
        plan = enc.plan([text], task=task, window=window, overlap=overlap)[0]
    full = _full_ids(enc, text, task)
    head = len(full) - 1 - plan.tokens  # the specials and the prefix before the text's own ids
    content = full[head:-1]
    assert len(content) == plan.tokens > window
    starts = _content_starts(enc, text, task, plan.tokens)
    assert plan.token_spans == windows(plan.tokens, window, overlap, starts)
    assert all(starts[a] for a, _ in plan.token_spans)  # no word here is longer than a window
    for row, (a, b) in zip(plan.rows, plan.token_spans):
        assert row == full[:head] + content[a:b] + full[-1:]  # every window repeats the prefix and specials
        assert len(row) <= enc.max_length
    chars = plan.char_spans
    assert chars[0][0] == len(text) - len(text.lstrip()) or not text[: chars[0][0]].strip()
    assert not text[chars[-1][1] :].strip()  # nothing but whitespace after the last window
    for (a, b), (c, d) in zip(chars, chars[1:]):
        assert a <= c <= b <= d  # in order, each overlapping the next
    for a, b in chars:
        assert 0 <= a < b <= len(text) and text[a:b].strip()


def _content_starts(enc, text, task, n):
    """Where a word starts among the text's own tokens, by the artifact's tokenizer.json rule."""
    import json

    from tokenizers import Tokenizer

    from rosberta_onnx.chunking import WordRule, word_starts

    path = enc.folder / enc.manifest.tokenizer_file
    tok = Tokenizer.from_file(str(path))
    tok.no_truncation()
    tokens = tok.encode(enc.prepare([text], task=task)[0], add_special_tokens=False).tokens[-n:]
    return word_starts(tokens, WordRule.from_model(json.loads(path.read_text(encoding="utf-8"))["model"]))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_prefix_the_text_carries_is_repeated_and_spans_index_the_text_as_given(enc):
    text = "search_query: " + LONG_EN
    with pytest.warns(PromptWarning):
        plan = enc.plan([text], task="search_query", window=100)[0]
    prefix_ids = enc.tokenize(["search_query:"], task=None)[0][1:-1]
    assert all(row[1 : 1 + len(prefix_ids)] == prefix_ids for row in plan.rows)
    a, b = plan.char_spans[0]
    assert text[a:b].startswith("The quick") and plan.char_spans[-1][1] <= len(text)


def test_the_first_full_window_is_the_truncated_text(enc):
    for text in (LONG_RU, EMOJI):
        ch = enc.encode_chunks([text], task="search_document")[0]
        trunc = enc.encode([text], task="search_document")[0]
        assert cos(ch.vectors[0], trunc) >= 0.99999
        assert enc.plan([text], task="search_document")[0].rows[0] == enc.tokenize([text], task="search_document")[0]


def test_text_of_exactly_max_length_is_one_window_and_one_more_token_is_two(enc):
    from rosberta_export.parity import exact_length_text

    exact = exact_length_text(lambda t: enc.count_tokens([t])[0], enc.max_length)
    plans = enc.plan([exact, exact + " a"])
    assert [len(p.rows) for p in plans] == [1, 2]
    assert plans[0].rows[0] == enc.tokenize([exact])[0]


def test_a_text_that_fits_gets_exactly_its_truncate_vector_with_long_chunk(enc):
    texts = ["короткий текст", "", "   ", DOC, "a short English text"]
    trunc = enc.encode(texts, task="search_query")
    chunked = enc.encode_detailed(texts, task="search_query", long="chunk")
    fits = [0, 1, 2, 4]
    np.testing.assert_array_equal(chunked.embeddings[fits], trunc[fits])
    assert not chunked.truncated.any() and chunked.token_counts[3] > enc.max_length
    assert cos(chunked.embeddings[3], trunc[3]) < 0.99999  # the long one is no longer only its first window
    np.testing.assert_allclose(np.linalg.norm(chunked.embeddings, axis=1), 1.0, atol=1e-5)


def test_the_document_vector_is_the_token_weighted_mean_of_its_windows(enc):
    ch = enc.encode_chunks([DOC], task="search_document")[0]
    w = np.array([b - a for a, b in ch.token_spans], dtype=np.float64)
    want = (ch.vectors * w[:, None]).sum(0) / w.sum()
    got = enc.encode([DOC], task="search_document", long="chunk")[0]
    assert cos(got, want) >= 0.99999 and abs(np.linalg.norm(got) - 1) < 1e-5


def test_chunks_do_not_depend_on_batch_size_or_neighbours(enc):
    texts = [LONG_RU, "short", LONG_EN]
    base = enc.encode_chunks(texts, batch_size=64, window=120, overlap=15)
    for kw in ({"batch_size": 1}, {"batch_size": 3, "max_batch_tokens": 300}):
        got = enc.encode_chunks(texts, window=120, overlap=15, **kw)
        for a, b in zip(base, got):
            assert a.token_spans == b.token_spans and a.char_spans == b.char_spans
            assert min(cos(x, y) for x, y in zip(a.vectors, b.vectors)) >= 0.99999
    alone = enc.encode_chunks([LONG_EN], window=120, overlap=15)[0]
    assert min(cos(x, y) for x, y in zip(alone.vectors, base[2].vectors)) >= 0.99999


def test_bad_arguments_name_the_value(enc):
    with pytest.raises(
        ValueError, match="overlap must be a whole number of tokens from 0 to window - 1 \\(9\\), got 10"
    ):
        enc.encode_chunks([LONG_EN], window=10, overlap=10)
    with pytest.raises(ValueError, match="window must be a whole number of tokens >= 1, got 0"):
        enc.encode_chunks([LONG_EN], window=0)
    with pytest.raises(ValueError, match="window=600 does not fit: .* choose window <= 510"):
        enc.encode_chunks([LONG_EN], window=600)
    with pytest.raises(ValueError, match="long='split' is not one of truncate, error, chunk"):
        enc.encode(["x"], long="split")
    with pytest.raises(ValueError, match="pass one of the two"):
        enc.encode(["x"], long="chunk", truncate=False)
    with pytest.raises(InputTooLongError, match=r"texts\[1\] has \d+ tokens"):
        enc.encode(["x", LONG_EN], long="error")
    with pytest.raises(InputTooLongError, match=r"texts\[1\] has \d+ tokens"):
        enc.encode(["x", LONG_EN], truncate=False)  # the older spelling of long="error"
    check_window(5, 0, 5)


def test_encode_ids_takes_token_rows_and_checks_them(enc):
    rows = enc.tokenize(["первый", "second text"], task="search_query")
    np.testing.assert_allclose(
        enc.encode_ids(rows), enc.encode(["первый", "second text"], task="search_query"), atol=1e-6
    )
    with pytest.raises(InputTooLongError, match=r"rows\[0\] has 0 ids"):
        enc.encode_ids([[]])
    with pytest.raises(TypeError, match=r"rows\[1\] is not a sequence of token ids"):
        enc.encode_ids([[0, 2], "text"])


def _long_documents(lang: str, count: int) -> list[str]:
    """Real STS sentences joined into documents ~2.4x the max length, with long words among them, so that windows cut
    by token count alone would start inside words."""
    from rosberta_export.corpus import sts_pairs

    long_words = {
        "en": "ukulele counterrevolutionaries electroencephalography incomprehensibilities",
        "ru": "достопримечательностями человеконенавистничество высокопревосходительство",
    }[lang]
    sents = [p.sentence1 for p in sts_pairs(lang, "dev")]
    per_doc = {"en": 60, "ru": 25}[lang]  # English sentences are shorter in tokens
    docs = []
    for d in range(count):
        part = sents[d * per_doc : (d + 1) * per_doc]
        docs.append(" ".join(f"{s} {long_words}" if i % 3 == 0 else s for i, s in enumerate(part)))
    return docs


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_chunk_vector_is_its_own_texts_vector_on_trained_weights(minilm_export, lang):
    """A stored chunk's text and vector agree: the text a window's span shows embeds to the window's vector."""
    from rosberta_onnx.chunking import windows

    enc = Encoder.load(minilm_export.folder, variant="fp32")
    docs = _long_documents(lang, 6)
    window, overlap = 128, 32
    plans = enc.plan(docs, window=window, overlap=overlap)
    chunks = enc.encode_chunks(docs, window=window, overlap=overlap)
    assert all(p.total > 2 * enc.max_length for p in plans)  # long enough for several windows
    mid_word = 0
    for doc, plan, ch in zip(docs, plans, chunks):
        starts = _content_starts(enc, doc, None, plan.tokens)
        mid_word += sum(not starts[a] for a, _ in windows(plan.tokens, window, overlap))  # token windows would
        texts = [doc[a:b] for a, b in ch.char_spans]
        own = enc.encode(texts)
        cosines = (own * ch.vectors).sum(1)
        worst = int(cosines.argmin())
        assert cosines.min() >= 0.999, (cosines.min(), texts[worst][:80])
        assert [r[1:-1] for r in enc.tokenize(texts)] == [row[1:-1] for row in plan.rows]  # the very same ids
    assert mid_word >= 5  # these documents do force cuts inside words when windows ignore them


@pytest.mark.parametrize(
    "text",
    ["漢字かな交じり文を読む" * 400, "👨‍👩‍👧‍👦🏳️‍🌈" * 300, "x" * 9000, "слово" * 2000],
    ids=["cjk", "emoji", "one-long-word", "ru-no-spaces"],
)
def test_texts_without_spaces_end_without_loops_or_empty_windows(enc, text):
    (ch,) = enc.encode_chunks([text], window=64, overlap=16)
    assert len(ch) <= ch.tokens // (64 - 16) + 2
    assert all(0 < b - a <= 64 for a, b in ch.token_spans) and ch.token_spans[-1][1] == ch.tokens
    assert all(text[a:b] for a, b in ch.char_spans) and np.isfinite(ch.vectors).all()
