"""Decoding for :class:`gicho.models.seq2seq.Seq2Seq`: greedy and beam search, with a constraint.

Both read the decoder one step at a time from the encoder's memory and the decoder's initial
state (:meth:`Seq2Seq.encode <gicho.models.seq2seq.Seq2Seq.encode>`). Padding and the start
token are never produced; a ``constraint(prefix) -> allowed`` mask forbids more tokens
without renormalising the model's probabilities, and each output's log-probability is also
returned divided by the mass the constraint allowed at each step. Beam search ranks finished
hypotheses by ``log p(y) / len(y) ** alpha`` (Wu et al. 2016, length normalisation) and stops
an example when no live beam can still beat its best finished hypothesis.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from gicho._validation import describe

# The decoder (a ``seq2seq.Decoder``) and its config (a ``seq2seq.Seq2SeqConfig``) are passed in
# and typed ``Any`` here: naming their classes would make this helper import the module that
# imports it (an import cycle, even under TYPE_CHECKING).
Decoder = Seq2SeqConfig = Any

__all__ = ["beam_search", "greedy", "next_token_log_probs"]


def next_token_log_probs(
    config: Seq2SeqConfig, logits: Tensor, constraint: Any = None, prefix: Tensor | None = None, live: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Next-token log-probabilities (B, V) of the model, with padding, start and the tokens
    ``constraint(prefix)`` forbids at -inf; and the same divided by the mass the constraint keeps."""
    raw = F.log_softmax(logits.float(), dim=-1)
    logp = raw.clone()
    logp[:, [config.pad_id, config.bos_id]] = float("-inf")
    if constraint is None:
        return logp, logp
    allowed = constraint(prefix)
    if not isinstance(allowed, Tensor) or allowed.dtype != torch.bool or allowed.shape != logp.shape:
        raise ValueError(f"`constraint` must return a bool tensor of shape {tuple(logp.shape)}; "
                         f"got {describe(allowed)}")
    kept = torch.logsumexp(raw.masked_fill(~allowed, float("-inf")), dim=-1, keepdim=True)  # (B, 1)
    logp = logp.masked_fill(~allowed, float("-inf"))
    stuck = live & ~torch.isfinite(logp).any(dim=-1)  # (B,)
    if bool(stuck.any()):
        row = int(stuck.nonzero()[0, 0])
        raise ValueError(f"`constraint` allows no next token after the prefix {prefix[row].tolist()}")
    return logp, logp - kept.masked_fill(~torch.isfinite(kept), 0.0)


def greedy(
    decoder: Decoder, config: Seq2SeqConfig, memory: Tensor, mask: Tensor, state: tuple[Tensor, Tensor], max_len: int, constraint: Any = None
) -> dict[str, Tensor]:
    cfg = config
    B = memory.shape[0]
    y = memory.new_full((B, 1), cfg.bos_id, dtype=torch.long)  # (B, 1)
    feed = memory.new_zeros(B, 1, cfg.decoder_dim) if cfg.input_feeding else None
    done = torch.zeros(B, dtype=torch.bool, device=memory.device)
    scores = memory.new_zeros(B, dtype=torch.float32)
    constrained = memory.new_zeros(B, dtype=torch.float32)
    tokens, weights = [], []
    for t in range(max_len):
        logits, state, weight, attentional = decoder(y, state, feed, memory, mask)
        feed = attentional if cfg.input_feeding else None
        prefix = torch.cat(tokens, 1) if t else y.new_zeros(B, 0)  # (B, t)
        logp, clogp = next_token_log_probs(cfg, logits[:, 0], constraint, prefix, ~done)
        logp, y = logp.max(dim=-1, keepdim=True)  # (B, 1)
        scores += torch.where(done, 0.0, logp[:, 0])
        constrained += torch.where(done, 0.0, clogp.gather(1, y)[:, 0])
        y = y.masked_fill(done[:, None], cfg.pad_id)
        tokens.append(y)
        weights.append(weight.masked_fill(done[:, None, None], 0.0))
        done = done | (y[:, 0] == cfg.eos_id)
        if bool(done.all()):
            break
    return {"tokens": torch.cat(tokens, 1), "attentions": torch.cat(weights, 1), "scores": scores,
            "log_probs": scores, "constrained_log_probs": constrained}


def beam_search(
    decoder: Decoder, config: Seq2SeqConfig, memory: Tensor, mask: Tensor, state: tuple[Tensor, Tensor], max_len: int, K: int, alpha: float,
    constraint: Any = None,
) -> dict[str, Tensor]:
    cfg = config
    B, S, D = memory.shape
    memory = memory.repeat_interleave(K, dim=0)  # (B*K, S, D)
    mask = mask.repeat_interleave(K, dim=0)  # (B*K, S)
    state = tuple(s.repeat_interleave(K, dim=1) for s in state)  # (L, B*K, D)
    feed = memory.new_zeros(B * K, 1, D) if cfg.input_feeding else None
    y = memory.new_full((B * K, 1), cfg.bos_id, dtype=torch.long)
    beam_scores = memory.new_full((B, K), float("-inf"), dtype=torch.float32)
    beam_scores[:, 0] = 0.0  # only the first beam is alive at the start
    beam_constrained = torch.zeros_like(beam_scores)  # (B, K) log-probs renormalised by the constraint
    history = memory.new_zeros(B * K, 0, dtype=torch.long)  # (B*K, t)
    att_history = memory.new_zeros(B * K, 0, S)  # (B*K, t, S)
    finished: list[list[tuple[float, Tensor, Tensor, float, float]]] = [[] for _ in range(B)]
    closed = [False] * B

    def normalised(score: float, length: int) -> float:
        return score / (length**alpha)

    for t in range(max_len):
        logits, state, weight, attentional = decoder(y, state, feed, memory, mask)
        logp, clogp = next_token_log_probs(cfg, logits[:, 0], constraint, history, beam_scores.view(-1) > float("-inf"))
        V = logp.shape[-1]
        cand = (beam_scores[:, :, None] + logp.view(B, K, V)).view(B, K * V)  # (B, K*V)
        top_scores, top_idx = cand.topk(min(2 * K, K * V), dim=-1)  # (B, 2K)
        top_constrained = (beam_constrained[:, :, None] + clogp.view(B, K, V)).view(B, K * V).gather(1, top_idx)
        beam_idx, token = top_idx // V, top_idx % V
        new_beam = torch.zeros(B, K, dtype=torch.long, device=memory.device)
        new_token = torch.full((B, K), cfg.pad_id, dtype=torch.long, device=memory.device)
        new_scores = memory.new_full((B, K), float("-inf"), dtype=torch.float32)
        new_constrained = torch.zeros_like(new_scores)
        weight = weight[:, 0]  # (B*K, S)
        for b in range(B):
            if closed[b]:
                continue
            kept = 0
            for rank in range(top_scores.shape[1]):
                score = float(top_scores[b, rank])
                if score == float("-inf") or kept == K:
                    break
                src_row = b * K + int(beam_idx[b, rank])
                if int(token[b, rank]) == cfg.eos_id:
                    if rank < K:  # an end among the K best candidates finishes a hypothesis
                        seq = torch.cat([history[src_row], token[b, rank : rank + 1]])
                        att = torch.cat([att_history[src_row], weight[src_row][None]])
                        finished[b].append((normalised(score, t + 1), seq, att, score,
                                            float(top_constrained[b, rank])))
                    continue
                new_beam[b, kept] = int(beam_idx[b, rank])
                new_token[b, kept] = token[b, rank]
                new_scores[b, kept] = score
                new_constrained[b, kept] = top_constrained[b, rank]
                kept += 1
            # Stop when no live beam can still beat the best finished hypothesis.
            best_live = float(new_scores[b].max())
            horizon = max_len if alpha >= 0 else t + 2
            bound = normalised(best_live, horizon) if best_live > float("-inf") else float("-inf")
            if len(finished[b]) >= K and max(f[0] for f in finished[b]) >= bound:
                closed[b] = True
        if all(closed):
            break
        rows = (torch.arange(B, device=memory.device)[:, None] * K + new_beam).view(-1)  # (B*K,)
        state = tuple(s[:, rows] for s in state)
        feed = attentional[rows] if cfg.input_feeding else None
        history = torch.cat([history[rows], new_token.view(-1, 1)], dim=1)
        att_history = torch.cat([att_history[rows], weight[rows][:, None]], dim=1)
        beam_scores, beam_constrained = new_scores, new_constrained
        y = new_token.view(-1, 1)
    for b in range(B):  # hypotheses cut at max_len compete with the finished ones
        if not closed[b]:
            for k in range(K):
                score = float(beam_scores[b, k])
                if score > float("-inf"):
                    row = b * K + k
                    finished[b].append((normalised(score, history.shape[1]), history[row], att_history[row],
                                        score, float(beam_constrained[b, k])))
    best = [max(hyps, key=lambda h: h[0]) for hyps in finished]
    T = max(len(h[1]) for h in best)
    tokens = memory.new_full((B, T), cfg.pad_id, dtype=torch.long)
    atts = memory.new_zeros(B, T, S)
    for b, (_, seq, att, _, _) in enumerate(best):
        tokens[b, : len(seq)] = seq
        atts[b, : len(seq)] = att
    scores, log_probs, constrained = torch.tensor([(h[0], h[3], h[4]) for h in best], device=memory.device).T
    return {"tokens": tokens, "attentions": atts, "scores": scores, "log_probs": log_probs,
            "constrained_log_probs": constrained}
