"""Names of earlier versions that gicho still reads (torch-free, so task configs can use it).

:data:`LEGACY_CONFIG_FIELDS`: a model Config field renamed → today's name. ``config.json`` files
(:func:`gicho.models._pretrained.config_from_dict`) and task configs and options
(:mod:`gicho.tasks.overrides`) read the old name as the new one. The tensor renames are in
:data:`gicho.models._hf.LEGACY_RENAMES`.
"""

from __future__ import annotations

__all__ = ["LEGACY_CONFIG_FIELDS"]

# every family says n_labels (Hugging Face's num_labels) since 2026-12-06
LEGACY_CONFIG_FIELDS: dict[str, str] = {"n_classes": "n_labels", "n_outputs": "n_labels"}
