"""PyTorch building blocks: attention, Transformer encoder, embeddings, pooling.

Boolean masks are ``True`` where a position may be attended to / is a real token, and
``False`` where it is masked out or padding (see :mod:`gicho.nn.attention`).
"""

from gicho.nn.attention import (
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    MultiHeadSelfAttention,
    dot_product_attention,
    masked_softmax,
    scaled_dot_product_attention,
)
from gicho.nn.embeddings import (
    FeatureTokenizer,
    LearnedPositionEmbedding,
    PatchEmbedding,
    SegmentEmbedding,
    SinusoidalPositionEmbedding,
    TokenEmbeddings,
    sinusoidal_table,
)
from gicho.nn.pooling import POOL_MODES, PoolMode, pool_tokens
from gicho.nn.transformer import MLP, EncoderOutput, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "MLP",
    "POOL_MODES",
    "AdditiveAttention",
    "DotAttention",
    "EncoderOutput",
    "FeatureTokenizer",
    "GeneralAttention",
    "LearnedPositionEmbedding",
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "PoolMode",
    "SegmentEmbedding",
    "SinusoidalPositionEmbedding",
    "TokenEmbeddings",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "dot_product_attention",
    "masked_softmax",
    "pool_tokens",
    "scaled_dot_product_attention",
    "sinusoidal_table",
]
