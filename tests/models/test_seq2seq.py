"""Tests of the attention-based RNN encoder-decoder."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from gicho.models.seq2seq import Seq2Seq, Seq2SeqConfig

PAD, BOS, EOS = 0, 1, 2


def tiny(**overrides) -> Seq2Seq:
    torch.manual_seed(0)
    kwargs = dict(src_vocab_size=12, tgt_vocab_size=7, embed_dim=6, hidden_dim=5, attention_dim=4)
    kwargs.update(overrides)
    return Seq2Seq(Seq2SeqConfig(**kwargs)).eval()


def batch(lengths=(6, 3, 1), tgt_len=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    B, S = len(lengths), max(lengths)
    src = torch.randint(4, 12, (B, S), generator=g)
    mask = torch.arange(S)[None] < torch.tensor(lengths)[:, None]
    src = src.masked_fill(~mask, PAD)
    labels = torch.randint(3, 7, (B, tgt_len), generator=g)
    tgt_in = torch.cat([torch.full((B, 1), BOS), labels[:, :-1]], dim=1)
    return src, mask, tgt_in, labels


VARIANTS = [
    dict(rnn=rnn, attention=att, bidirectional=bi, input_feeding=feed, encoder_layers=layers,
         decoder_layers=layers)
    for rnn, att, bi, feed, layers in [
        ("gru", "dot", True, False, 1), ("lstm", "general", True, True, 2),
        ("gru", "additive", False, True, 1), ("lstm", "dot", False, False, 2),
        ("gru", "general", True, False, 1), ("lstm", "additive", True, False, 1),
    ]
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_shapes_loss_and_attention(variant) -> None:
    model = tiny(**variant)
    src, mask, tgt_in, labels = batch()
    out = model(src, mask, tgt_in, labels)
    assert out["logits"].shape == (3, 4, 7)
    assert out["attentions"].shape == (3, 4, 6)
    weights = out["attentions"]
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights.masked_select(~mask[:, None, :].expand_as(weights)) == 0)
    expected = F.cross_entropy(out["logits"].reshape(-1, 7), labels.reshape(-1))
    torch.testing.assert_close(out["loss"], expected)
    out["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert "loss" not in model(src, mask, tgt_in)


@pytest.mark.parametrize("variant", VARIANTS)
def test_padding_does_not_change_outputs(variant) -> None:
    model = tiny(**variant)
    src, mask, tgt_in, _ = batch(lengths=(6, 3, 1))
    together = model(src, mask, tgt_in)["logits"]
    for i, n in enumerate((6, 3, 1)):
        alone = model(src[i : i + 1, :n], mask[i : i + 1, :n], tgt_in[i : i + 1])["logits"]
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_loss_ignores_minus_100() -> None:
    model = tiny()
    src, mask, tgt_in, labels = batch()
    ignored = labels.clone()
    ignored[0, 2:] = -100
    ignored[2, 1] = -100
    out = model(src, mask, tgt_in, ignored)
    keep = ignored != -100
    expected = F.cross_entropy(out["logits"][keep], labels[keep])
    torch.testing.assert_close(out["loss"], expected)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_greedy_scores_match_teacher_forced_log_probs(input_feeding) -> None:
    model = tiny(input_feeding=input_feeding, max_target_len=6)
    src, mask, _, _ = batch()
    out = model.generate(src, mask)
    tokens = out["tokens"]
    assert out["attentions"].shape == (*tokens.shape, src.shape[1])
    tgt_in = torch.cat([torch.full((3, 1), BOS), tokens[:, :-1]], dim=1)
    forced = model(src, mask, tgt_in)
    logp = F.log_softmax(forced["logits"], -1)
    for b in range(3):
        row = tokens[b]
        n = int((row != PAD).sum())
        assert n == len(row) or row[n - 1] == EOS  # ends with the end token unless cut
        assert torch.all(row[n:] == PAD)
        # greedy picks the most likely token among those it may produce
        allowed = logp[b, :n].clone()
        allowed[:, [PAD, BOS]] = -math.inf
        assert torch.equal(allowed.argmax(-1), row[:n])
        expected = logp[b, torch.arange(n), row[:n]].sum()
        torch.testing.assert_close(out["scores"][b], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["attentions"][b, :n], forced["attentions"][b, :n], atol=1e-5, rtol=1e-5)
        assert torch.all(out["attentions"][b, n:] == 0)


def test_beam_of_width_one_is_greedy() -> None:
    model = tiny(input_feeding=True, max_target_len=6)
    src, mask, _, _ = batch()
    greedy = model.generate(src, mask)
    beam = model.generate(src, mask, beam_width=1, length_penalty=0.0)
    torch.testing.assert_close(beam["scores"], greedy["scores"])
    assert torch.equal(beam["tokens"], greedy["tokens"])


@torch.no_grad()
def _sequence_log_prob(model, src, mask, seq) -> float:
    tgt_in = torch.tensor([[BOS, *seq[:-1]]])
    logp = F.log_softmax(model(src, mask, tgt_in)["logits"][0], -1)
    return float(sum(logp[t, tok] for t, tok in enumerate(seq)))


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_finds_the_exhaustive_optimum(alpha) -> None:
    max_len = 4
    torch.manual_seed(2)
    config = Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=5, embed_dim=6, hidden_dim=5,
                           max_target_len=max_len, input_feeding=True)
    model = Seq2Seq(config).eval()
    with torch.no_grad():  # sharper next-token distributions: greedy is then often not optimal
        model.decoder.out.weight.mul_(4.0)
    src, mask, _, _ = batch(lengths=(5, 2, 4))
    beam = model.generate(src, mask, beam_width=40, length_penalty=alpha)
    greedy = model.generate(src, mask)
    tokens = (3, 4)  # every token but padding, start and end
    finished = [(*body, EOS) for n in range(max_len) for body in itertools.product(tokens, repeat=n)]
    cut = list(itertools.product(tokens, repeat=max_len))  # no end token within max_len
    beats_greedy = False
    for b in range(3):
        scored = {c: _sequence_log_prob(model, src[b : b + 1], mask[b : b + 1], c) / len(c) ** alpha
                  for c in finished + cut}
        best = max(scored, key=scored.get)
        got = tuple(int(t) for t in beam["tokens"][b] if t != PAD)
        assert got == best
        assert float(beam["scores"][b]) == pytest.approx(scored[best], abs=1e-5)
        greedy_seq = tuple(int(t) for t in greedy["tokens"][b] if t != PAD)
        assert scored[best] >= scored[greedy_seq] - 1e-6
        beats_greedy |= got != greedy_seq
    if alpha == 1.0:  # the case is chosen so that search matters
        assert beats_greedy


def test_beam_search_returns_attention_per_step() -> None:
    model = tiny(max_target_len=5)
    src, mask, _, _ = batch()
    out = model.generate(src, mask, beam_width=3)
    T = out["tokens"].shape[1]
    assert out["attentions"].shape == (3, T, 6)
    for b in range(3):
        n = int((out["tokens"][b] != PAD).sum())
        torch.testing.assert_close(out["attentions"][b, :n].sum(-1), torch.ones(n))
        assert torch.all(out["attentions"][b, :, mask.shape[1]:] == 0)
        assert torch.all(out["attentions"][b][:, ~mask[b]] == 0)


def test_teacher_forcing_ratio() -> None:
    src, mask, tgt_in, _ = batch()
    other = tgt_in.clone()
    other[:, 1:] = (other[:, 1:] - 2) % 4 + 3  # different gold tokens after the start
    own = tiny(teacher_forcing_ratio=0.0).train()  # reads only its own predictions
    torch.testing.assert_close(own(src, mask, tgt_in)["logits"], own(src, mask, other)["logits"])
    gold = tiny(teacher_forcing_ratio=1.0).train()
    assert not torch.allclose(gold(src, mask, tgt_in)["logits"][:, 1:], gold(src, mask, other)["logits"][:, 1:])
    own.eval()  # evaluation always reads gold
    assert not torch.allclose(own(src, mask, tgt_in)["logits"][:, 1:], own(src, mask, other)["logits"][:, 1:])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hidden_dim": 0}, ValueError, r"`hidden_dim` must be a finite integer > 0; got 0"),
        ({"rnn": "rnn"}, ValueError, r"`rnn` must be one of 'gru', 'lstm'; got 'rnn'"),
        ({"attention": "cosine"}, ValueError, r"`attention` must be one of 'dot', 'general', 'additive'"),
        ({"eos_id": 1}, ValueError, r"pad_id, bos_id and eos_id must differ"),
        ({"eos_id": 15}, ValueError, r"eos_id=15 must be < tgt_vocab_size=15"),
        ({"pad_id": 3, "src_vocab_size": 3}, ValueError, r"pad_id=3 must be < src_vocab_size=3"),
        ({"dropout": 1.0}, ValueError, r"`dropout` must lie in \[0, 1\); got 1.0"),
        ({"teacher_forcing_ratio": 1.5}, ValueError, r"`teacher_forcing_ratio` must lie in \[0, 1\]"),
        ({"dropout": "0.1"}, TypeError, r"`dropout` must be a number"),
    ],
)
def test_config_rejects_bad_values(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        Seq2SeqConfig(**kwargs)


def test_model_rejects_bad_inputs() -> None:
    model = tiny()
    src, mask, tgt_in, labels = batch()
    with pytest.raises(TypeError, match=r"config must be a Seq2SeqConfig"):
        Seq2Seq({"hidden_dim": 4})
    with pytest.raises(ValueError, match=r"src must be an int64 tensor of shape \(B, S\)"):
        model(src.float(), mask, tgt_in)
    with pytest.raises(ValueError, match=r"src_mask must be a bool tensor of shape \(3, 6\)"):
        model(src, mask.long(), tgt_in)
    empty_row = mask.clone()
    empty_row[2] = False
    with pytest.raises(ValueError, match=r"every source row needs at least one real character"):
        model(src, empty_row, tgt_in)
    with pytest.raises(ValueError, match=r"tgt_in must have shape \(B=3, T\)"):
        model(src, mask, tgt_in[:2])
    with pytest.raises(ValueError, match=r"labels must have the shape of tgt_in \(3, 4\)"):
        model(src, mask, tgt_in, labels[:, :2])
    with pytest.raises(ValueError, match=r"`beam_width` must be a finite integer > 0; got 0"):
        model.generate(src, mask, beam_width=0)
    with pytest.raises(TypeError, match=r"`length_penalty` must be a number"):
        model.generate(src, mask, beam_width=2, length_penalty="1")


# --- constrained decoding -----------------------------------------------------------------------


def _allow_all(prefix: torch.Tensor) -> torch.Tensor:
    return torch.ones(prefix.shape[0], 7, dtype=torch.bool)


@pytest.mark.parametrize("beam_width", [1, 3])
def test_a_constraint_that_allows_everything_changes_nothing(beam_width) -> None:
    model = tiny(input_feeding=True, max_target_len=6)
    src, mask, _, _ = batch()
    free = model.generate(src, mask, beam_width=beam_width)
    bound = model.generate(src, mask, beam_width=beam_width, constraint=_allow_all)
    assert torch.equal(free["tokens"], bound["tokens"])
    for key in ("scores", "log_probs", "constrained_log_probs"):
        torch.testing.assert_close(free[key], bound[key])
    torch.testing.assert_close(free["log_probs"], free["constrained_log_probs"])


def _no_repeat(prefix: torch.Tensor) -> torch.Tensor:
    """Tokens 3 and 4 alternate, two to four of them, then the end token."""
    allowed = torch.zeros(prefix.shape[0], 5, dtype=torch.bool)
    t = prefix.shape[1]
    for i in range(prefix.shape[0]):
        last = int(prefix[i, -1]) if t else None
        allowed[i, [tok for tok in (3, 4) if tok != last and t < 4]] = True
        allowed[i, EOS] = t >= 2
    return allowed


@pytest.mark.parametrize("beam_width", [1, 40])
def test_constrained_search_returns_allowed_outputs_and_the_constrained_optimum(beam_width) -> None:
    max_len = 5
    torch.manual_seed(2)
    config = Seq2SeqConfig(src_vocab_size=12, tgt_vocab_size=5, embed_dim=6, hidden_dim=5,
                           max_target_len=max_len, input_feeding=True)
    model = Seq2Seq(config).eval()
    with torch.no_grad():
        model.decoder.out.weight.mul_(4.0)
    src, mask, _, _ = batch(lengths=(5, 2, 4))
    out = model.generate(src, mask, beam_width=beam_width, length_penalty=0.0, constraint=_no_repeat)
    allowed = [(*body, EOS) for n in range(2, max_len) for body in itertools.product((3, 4), repeat=n)
               if all(a != b for a, b in itertools.pairwise(body))]
    for b in range(3):
        got = tuple(int(t) for t in out["tokens"][b] if t != PAD)
        assert got in allowed
        log_prob = _sequence_log_prob(model, src[b : b + 1], mask[b : b + 1], got)
        assert float(out["log_probs"][b]) == pytest.approx(log_prob, abs=1e-5)  # the model's own
        assert float(out["constrained_log_probs"][b]) >= float(out["log_probs"][b])  # mass was removed
        assert float(out["constrained_log_probs"][b]) <= 1e-6
        if beam_width == 40:
            scored = {c: _sequence_log_prob(model, src[b : b + 1], mask[b : b + 1], c) for c in allowed}
            assert got == max(scored, key=scored.get)


def test_generate_rejects_bad_constraints() -> None:
    model = tiny()
    src, mask, _, _ = batch()
    with pytest.raises(TypeError, match=r"argument `constraint` must be callable .*; got 3"):
        model.generate(src, mask, constraint=3)
    with pytest.raises(ValueError, match=r"`constraint` must return a bool tensor of shape \(3, 7\)"):
        model.generate(src, mask, constraint=lambda prefix: torch.ones(prefix.shape[0], 6, dtype=torch.bool))
    only_padding = lambda prefix: torch.arange(7)[None].expand(prefix.shape[0], 7) == PAD  # noqa: E731
    for beam_width in (1, 2):
        with pytest.raises(ValueError, match=r"`constraint` allows no next token after the prefix \[\]"):
            model.generate(src, mask, beam_width=beam_width, constraint=only_padding)
