"""A newcomer adds a model family through the public seams only (docs/architecture.md).

The family: an encoder over continuous features whose head predicts ``n_labels`` classes. It
uses a stem, the shared backbone, the one pooling function, the one loss, the shared Config
contract and the save/load format, and nothing private. It stays under 80 lines on purpose:
it is the map's worked example.
"""

from dataclasses import dataclass

import torch

from gicho.models import HeadConfig, PretrainedModel, from_pretrained
from gicho.nn import EncoderBackbone, FeatureStem, TransformerEncoder, classification_loss


@dataclass
class ToyConfig(HeadConfig):
    n_features: int = 6
    d_model: int = 16
    n_labels: int = 3
    label_names: tuple[str, ...] | None = None
    dropout: float = 0.0
    pool: str = "cls"

    def __post_init__(self) -> None:
        self.check_head()  # n_labels, label_names, every *dropout field


class ToyEncoderClassifier(PretrainedModel):
    config_class, model_type = ToyConfig, "toy-encoder-classifier"

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        stem = FeatureStem(config.d_model, n_features=config.n_features, cls="learned", position="none")
        encoder = TransformerEncoder(1, config.d_model, 2, 2 * config.d_model, dropout=config.dropout, norm_first=True)
        self.backbone = EncoderBackbone(stem, encoder)
        self.head = torch.nn.Linear(config.d_model, config.n_labels)

    def forward_features(self, features):
        return self.backbone.forward_features(features=features)

    def pool(self, encoded):
        return self.backbone.pool(encoded, self.config.pool)

    def forward_head(self, pooled, pre_logits=False):
        return pooled if pre_logits else self.head(pooled)

    def forward(self, features, labels=None):
        pooled, _ = self.backbone.forward_pooled(self.config.pool, features=features)  # [CLS] row only
        out = {"logits": self.forward_head(pooled)}
        return out if labels is None else {**out, **classification_loss(out["logits"], labels)}


def test_a_toy_family_trains_saves_and_reloads_through_the_public_seams(tmp_path):
    torch.manual_seed(0)
    model = ToyEncoderClassifier(ToyConfig(label_names=("a", "b", "c")))
    x, y = torch.randn(8, 6), torch.tensor([0, 1, 2, 0, 1, 2, 0, -100])
    out = model(x, labels=y)
    assert out["logits"].shape == (8, 3) and int(out["n_items"]) == 7  # -100 is not scored
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    full = model.pool(model.forward_features(x))  # every row computed, then [CLS] read
    torch.testing.assert_close(model.forward_head(full), out["logits"], rtol=1e-5, atol=1e-6)
    model.save_pretrained(tmp_path)
    loaded = from_pretrained(tmp_path)  # found by model_type: defining the class registered it
    assert type(loaded) is ToyEncoderClassifier and loaded.config == model.config
    torch.testing.assert_close(loaded(x)["logits"], model.eval()(x)["logits"], rtol=0, atol=0)
